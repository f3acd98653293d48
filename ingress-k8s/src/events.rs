//! Kubernetes Events on our Ingresses: a `Warning` per problem, a `Normal` `Sync` when an
//! Ingress (generation) is first applied. Deduplicated: a stuck problem is reported once, and
//! again only after it went away and came back.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
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

/// Writes events.k8s.io/v1 Events. (kube's `Recorder` keys its series on the reason alone, so
/// two different problems on one Ingress would merge into one Event; the deduplication here is
/// per problem instead.)
struct Recorder {
    client: Client,
    identity: String,
}

impl Recorder {
    async fn publish(
        &self,
        warning: bool,
        reason: &str,
        note: String,
        regarding: ObjectReference,
    ) -> kube::Result<()> {
        let now = Timestamp::now();
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let name = format!("{}.{:x}", regarding.name.as_deref().unwrap_or(REPORTER), now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(if warning { "Translate" } else { "Sync" }.into()),
            reason: Some(reason.into()),
            note: Some(truncate(note)),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            regarding: Some(regarding),
            reporting_controller: Some(REPORTER.into()),
            reporting_instance: Some(self.identity.clone()),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok(())
    }
}

/// Runs for ever: after each snapshot, the leader records what is new.
pub(crate) async fn run(
    client: Client,
    identity: String,
    mut snapshots: Snapshots,
    mut leader: watch::Receiver<bool>,
) {
    let recorder = Recorder { client, identity };
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
                let note = format!("Scheduled for sync (generation {})", ingress.generation.unwrap_or(0));
                match recorder
                    .publish(false, "Sync", note, reference(&ingress.key, ingress.uid.clone()))
                    .await
                {
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
                let reason = match problem.severity {
                    Severity::Rejected => "Rejected",
                    Severity::Warning => "Degraded",
                };
                let note = format!("{}: {}", problem.field, problem.reason);
                match recorder.publish(true, reason, note, reference(&problem.object, uid.clone())).await {
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
