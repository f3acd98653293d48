//! Kubernetes Events on our Ingresses: a `Warning` per problem, a `Normal` `Sync` when an
//! Ingress (generation) is first applied. Deduplicated: a stuck problem is reported once, and
//! again only after it went away and came back.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;

use crate::objects::Key;
use crate::translate::{Problem, Severity};
use crate::{Kind, Snapshots};

/// The `reportingController` of our Events.
pub const REPORTER: &str = "ferry-ingress-controller";

fn reference(key: &Key, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("networking.k8s.io/v1".into()),
        kind: Some("Ingress".into()),
        namespace: Some(key.0.clone()),
        name: Some(key.1.clone()),
        uid,
        ..ObjectReference::default()
    }
}

/// Runs for ever: after each snapshot, the leader records what is new.
pub(crate) async fn run(
    client: Client,
    identity: String,
    mut snapshots: Snapshots,
    mut leader: watch::Receiver<bool>,
) {
    let recorder = Recorder::new(client, Reporter { controller: REPORTER.into(), instance: Some(identity) });
    let mut reported: HashSet<Problem> = HashSet::new();
    let mut synced: HashMap<Key, (Option<String>, Option<i64>)> = HashMap::new();
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let leading = *leader.borrow_and_update();
        if let (true, Some(snapshot)) = (leading, snapshot) {
            let uids: HashMap<&Key, Option<String>> =
                snapshot.ingresses.iter().map(|i| (&i.key, i.uid.clone())).collect();
            for ingress in snapshot.ingresses.iter() {
                let seen = (ingress.uid.clone(), ingress.generation);
                if synced.get(&ingress.key) == Some(&seen) {
                    continue;
                }
                let event = Event {
                    type_: EventType::Normal,
                    reason: "Sync".into(),
                    note: Some(format!(
                        "Scheduled for sync (generation {})",
                        ingress.generation.unwrap_or(0)
                    )),
                    action: "Sync".into(),
                    secondary: None,
                };
                match recorder.publish(&event, &reference(&ingress.key, ingress.uid.clone())).await {
                    Ok(()) => drop(synced.insert(ingress.key.clone(), seen)),
                    Err(error) => tracing::warn!(%error, "could not record Sync event"),
                }
            }
            let current: HashSet<&Problem> =
                snapshot.problems.iter().filter(|p| p.kind == Kind::Ingress).collect();
            reported.retain(|p| current.contains(p));
            for problem in current {
                if reported.contains(problem) {
                    continue;
                }
                let Some(uid) = uids.get(&problem.object) else { continue };
                let event = Event {
                    type_: EventType::Warning,
                    reason: match problem.severity {
                        Severity::Rejected => "Rejected".into(),
                        Severity::Warning => "Degraded".into(),
                    },
                    note: Some(truncate(format!("{}: {}", problem.field, problem.reason))),
                    action: "Translate".into(),
                    secondary: None,
                };
                match recorder.publish(&event, &reference(&problem.object, uid.clone())).await {
                    Ok(()) => drop(reported.insert(problem.clone())),
                    Err(error) => tracing::warn!(%error, "could not record Warning event"),
                }
            }
            synced.retain(|k, _| uids.contains_key(k));
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
        }
    }
}

/// Event notes are limited to 1 kB.
fn truncate(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}
