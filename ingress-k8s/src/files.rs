//! The manifest source (standalone mode, no cluster): every YAML/JSON document under a
//! directory, re-read when files change, fed to the same translation as the cluster source.
//!
//! A file that does not parse is reported (file, document index, reason) and its previous good
//! content stays in force; the rest of the directory applies atomically: first as one
//! [`Change::Replace`], then each scan's changes as one [`Change::Update`] of the objects the
//! changed files touched.

mod convert;

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use convert::legacy_ingress;

use crate::objects::StoredRef;
use crate::{Change, Error, Kind, Object, Objects, Result};

/// A manifest file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file.
    pub file: PathBuf,
    /// The index of the failing document in the file (0-based), if one document is at fault.
    pub document: Option<usize>,
    /// Why.
    pub reason: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(d) => write!(f, "{} document {d}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// Parses every document of one file's text. All or nothing: any bad document fails the file.
pub fn parse_manifest(file: &Path, text: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    each_object(file, text, |object| objects.push(object))?;
    Ok(objects)
}

/// [`parse_manifest`] into a store, each object stored as its document is read (a file of
/// 10,000 Ingresses is never held whole as API objects).
fn read_manifest(file: &Path, text: &str) -> Result<Objects, ManifestError> {
    let mut objects = Objects::new();
    each_object(file, text, |object| objects.insert(object))?;
    Ok(objects)
}

/// Hands `take` every object of every document of `text`, in order; stops at the first bad one.
fn each_object(file: &Path, text: &str, mut take: impl FnMut(Object)) -> Result<(), ManifestError> {
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let failed = |reason: String| ManifestError { file: file.to_owned(), document: Some(index), reason };
        let value = serde_json::Value::deserialize(doc).map_err(|e| failed(e.to_string()))?;
        convert::document(value).map_err(failed)?.into_iter().for_each(&mut take);
    }
    Ok(())
}

/// What is known of one file: a fingerprint of its bytes, its last good objects, and the
/// error of its current content if that did not parse.
#[derive(Debug)]
struct FileState {
    /// The file's length and modification time when last read: unchanged, it is not read.
    stamp: Option<(u64, std::time::SystemTime)>,
    fingerprint: u64,
    /// Its good objects, shared with every [`ManifestDir::objects`] until the file changes.
    objects: Objects,
    error: Option<ManifestError>,
}

/// A manifest directory, read again on each [`scan`](ManifestDir::scan).
#[derive(Debug)]
pub struct ManifestDir {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// The good objects files had before scans changed or removed them, since the last
    /// [`take_update`](ManifestDir::take_update) (empty for a file that is new).
    before: BTreeMap<PathBuf, Objects>,
    /// Scans so far: every [`FULL_READ_EVERY`]th reads every file whatever its stamp.
    scans: u64,
}

/// How often a scan reads every file even when its length and modification time are unchanged
/// (a rewrite of the same length within one tick of a coarse file-system clock).
const FULL_READ_EVERY: u64 = 20;

impl ManifestDir {
    /// A directory not yet read.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), files: BTreeMap::new(), before: BTreeMap::new(), scans: 0 }
    }

    /// Reads what changed since the last scan. Returns whether the good objects changed. Fails
    /// only when the directory itself cannot be read.
    pub fn scan(&mut self) -> Result<bool> {
        let mut paths = Vec::new();
        collect(&self.root, &mut paths)?;
        let gone: Vec<PathBuf> = self.files.keys().filter(|p| !paths.contains(p)).cloned().collect();
        let mut changed = !gone.is_empty();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                self.before.entry(path).or_insert(state.objects);
            }
        }
        self.scans += 1;
        let trust_stamps = !self.scans.is_multiple_of(FULL_READ_EVERY);
        for path in paths {
            // Unchanged length and modification time: not read again (a large directory would
            // otherwise be read and hashed whole on every poll).
            let stamp = std::fs::metadata(&path).ok().and_then(|m| Some((m.len(), m.modified().ok()?)));
            if trust_stamps && stamp.is_some() && self.files.get(&path).is_some_and(|s| s.stamp == stamp) {
                continue;
            }
            // A file that vanished between listing and reading is dropped by the next scan.
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hasher);
            let fingerprint = hasher.finish();
            let state = self.files.entry(path.clone()).or_insert(FileState {
                stamp: None,
                fingerprint: !fingerprint,
                objects: Objects::new(),
                error: None,
            });
            state.stamp = stamp;
            if state.fingerprint == fingerprint {
                continue;
            }
            state.fingerprint = fingerprint;
            let parsed = std::str::from_utf8(&bytes)
                .map_err(|e| ManifestError { file: path.clone(), document: None, reason: e.to_string() })
                .and_then(|text| read_manifest(&path, text));
            match parsed {
                Ok(objects) => {
                    let old = std::mem::replace(&mut state.objects, objects);
                    self.before.entry(path.clone()).or_insert(old);
                    state.error = None;
                    changed = true;
                }
                Err(error) => {
                    tracing::warn!(%error, "manifest rejected; its previous content stays in force");
                    state.error = Some(error);
                }
            }
        }
        Ok(changed)
    }

    /// Every good object of every file, in file order (a later file's object of the same
    /// kind and name wins). Objects of unchanged files are the same as in the last call.
    pub fn objects(&self) -> Objects {
        let mut objects = Objects::new();
        for state in self.files.values() {
            objects.absorb(&state.objects);
        }
        objects
    }

    /// Every good object, as one [`Change::Replace`] (what the engine starts from); the changes
    /// scans noted so far are in it.
    pub fn take_all(&mut self) -> Change {
        self.before.clear();
        Change::Replace(Box::new(self.objects()))
    }

    /// What the scans since the last call (or [`take_all`](ManifestDir::take_all)) changed, as
    /// one [`Change::Update`]: for each key a changed or removed file had or has, the object
    /// [`objects`](ManifestDir::objects) now gives for it where that is not the same `Arc` as
    /// before, or the key gone. Costs what the changed files hold, not the whole directory.
    pub fn take_update(&mut self) -> Change {
        let before = std::mem::take(&mut self.before);
        let paths: std::collections::BTreeSet<&PathBuf> = self.files.keys().chain(before.keys()).collect();
        // Each file's objects then and now, in file order (a removed file has none now).
        let now = |p: &PathBuf| self.files.get(p).map(|s| &s.objects);
        let olds: Vec<&Objects> = paths.iter().filter_map(|p| before.get(*p).or_else(|| now(p))).collect();
        let news: Vec<&Objects> = paths.iter().filter_map(|p| now(p)).collect();
        // The keys the changed files had or have.
        let touched: std::collections::BTreeSet<(Kind, &crate::objects::Key)> = before
            .iter()
            .flat_map(|(p, was)| was.keys().chain(now(p).into_iter().flat_map(Objects::keys)))
            .collect();
        let mut set = Objects::new();
        let mut gone = Vec::new();
        for (kind, key) in touched {
            match (winner(&olds, kind, key), winner(&news, kind, key)) {
                (Some(was), Some(is)) if was.same(&is) => {}
                (_, Some(is)) => set.put(key.clone(), is),
                (Some(_), None) => gone.push((kind, key.clone())),
                (None, None) => {}
            }
        }
        Change::Update(Box::new(set), gone)
    }

    /// The files whose current content does not parse.
    pub fn errors(&self) -> Vec<ManifestError> {
        self.files.values().filter_map(|f| f.error.clone()).collect()
    }
}

/// The object of `kind` under `key` that the last of `files` holding one gives, as
/// [`ManifestDir::objects`] merges them.
fn winner<'a>(files: &[&'a Objects], kind: Kind, key: &crate::objects::Key) -> Option<StoredRef<'a>> {
    files.iter().rev().find_map(|f| f.get(kind, key))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io { path: dir.to_owned(), source };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
    Ok(())
}
