//! Kubernetes Events on our Ingresses: a `Warning` per problem, a `Normal` `Sync` when an
//! Ingress (generation) is first applied. Deduplicated: a stuck problem is reported once, and
//! again only after it went away and came back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::objects::Key;
use crate::translate::{IngressInfo, IngressList, Problem, Severity};
use crate::{Kind, Snapshots};

/// The `reportingController` of our Events.
pub const REPORTER: &str = "ferry-ingress-controller";

fn reference(key: &Key, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("networking.k8s.io/v1".into()),
        kind: Some("Ingress".into()),
        namespace: Some(key.0.to_string()),
        name: Some(key.1.to_string()),
        uid: uid.map(str::to_owned),
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

/// Events of each type waiting to be written at most; more are dropped (client-go's
/// `maxQueuedEvents`, as ingress-nginx's recorder has it). Warnings are written first: a start-up
/// with thousands of Ingresses queues a `Sync` for each, which must not hold back (or push out)
/// the warning about the one that is broken.
const QUEUED: usize = 1000;

/// Event writes per second, and how many may go at once after a quiet spell: client-go's
/// default client rate (5 per second, bursts of 10), which ingress-nginx's Events share with its
/// other requests. At start-up with 10,000 Ingresses, one `Sync` Event each written at the API
/// server's pace loaded it and the controller for tens of seconds, slowing every change made
/// meanwhile (`benches/propagation.sh`).
const PER_SECOND: u32 = 5;
const BURST: u32 = 10;

/// One Event to write.
struct Pending {
    warning: bool,
    reason: &'static str,
    note: String,
    regarding: ObjectReference,
}

/// Runs for ever: after each snapshot, the leader queues what is new, and a writer records the
/// queue at [`PER_SECOND`].
pub(crate) async fn run(
    client: Client,
    identity: String,
    mut snapshots: Snapshots,
    mut leader: watch::Receiver<bool>,
) {
    let (warnings, warnings_rx) = tokio::sync::mpsc::channel(QUEUED);
    let (syncs, syncs_rx) = tokio::sync::mpsc::channel(QUEUED);
    let writer = tokio::spawn(write(Recorder { client, identity }, warnings_rx, syncs_rx));
    let mut queue = Queue { warnings, syncs, dropped: 0 };
    let mut reported: HashSet<Problem> = HashSet::new();
    let mut synced = Synced::default();
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let leading = *leader.borrow_and_update();
        if let (true, Some(snapshot)) = (leading, snapshot) {
            for ingress in synced.update(&snapshot.ingresses) {
                let note = format!("Scheduled for sync (generation {})", ingress.generation.unwrap_or(0));
                let regarding = reference(&ingress.key, ingress.uid.as_deref());
                queue.push(Pending { warning: false, reason: "Sync", note, regarding });
            }
            let current: HashSet<&Problem> =
                snapshot.problems.iter().filter(|p| p.kind == Kind::Ingress).collect();
            reported.retain(|p| current.contains(p));
            let new: Vec<&Problem> = current.into_iter().filter(|p| !reported.contains(*p)).collect();
            if !new.is_empty() {
                let uids: HashMap<&Key, &Option<Arc<str>>> =
                    snapshot.ingresses.iter().map(|i| (&i.key, &i.uid)).collect();
                for problem in new {
                    let Some(uid) = uids.get(&problem.object) else { continue };
                    let reason = match problem.severity {
                        Severity::Rejected => "Rejected",
                        Severity::Warning => "Degraded",
                    };
                    let note = format!("{}: {}", problem.field, problem.reason);
                    let regarding = reference(&problem.object, uid.as_deref());
                    queue.push(Pending { warning: true, reason, note, regarding });
                    reported.insert(problem.clone());
                }
            }
            queue.report();
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { break },
            changed = leader.changed() => if changed.is_err() { break },
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// The writer's queues, and what they dropped since the last report.
struct Queue {
    warnings: tokio::sync::mpsc::Sender<Pending>,
    syncs: tokio::sync::mpsc::Sender<Pending>,
    dropped: usize,
}

impl Queue {
    fn push(&mut self, event: Pending) {
        let queue = if event.warning { &self.warnings } else { &self.syncs };
        if queue.try_send(event).is_err() {
            self.dropped += 1;
        }
    }

    fn report(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(dropped = self.dropped, queued = QUEUED, "Event queue full: Events dropped");
            self.dropped = 0;
        }
    }
}

/// Writes queued Events, warnings first, at most [`BURST`] at once and [`PER_SECOND`] after
/// that.
async fn write(
    recorder: Recorder,
    mut warnings: tokio::sync::mpsc::Receiver<Pending>,
    mut syncs: tokio::sync::mpsc::Receiver<Pending>,
) {
    let mut rate = crate::rate::Rate::new(PER_SECOND, BURST);
    loop {
        rate.take().await;
        let event = tokio::select! {
            biased;
            Some(event) = warnings.recv() => event,
            Some(event) = syncs.recv() => event,
            else => break,
        };
        let Pending { warning, reason, note, regarding } = event;
        if let Err(error) = recorder.publish(warning, reason, note, regarding).await {
            tracing::warn!(%error, reason, "could not record Event");
        }
    }
}

/// The Ingresses the last snapshot listed, to tell which versions are new. Each snapshot lists
/// every Ingress, in `Arc`s the translation cache keeps while an Ingress is unchanged: only
/// those not in the last snapshot's list are looked at ([`IngressInfo::changes`]), against the
/// entries of the last list that are gone, so a snapshot costs what changed, not a key lookup
/// per Ingress (10,000 of them made every table cost milliseconds here), and nothing is kept
/// per Ingress.
#[derive(Default)]
struct Synced {
    /// The last snapshot's list (its addresses stay its own while it is kept).
    last: IngressList,
}

impl Synced {
    /// The Ingresses of `now` in another version (uid, generation) than in the last list, or
    /// not in it.
    fn update<'a>(&mut self, now: &'a IngressList) -> Vec<&'a IngressInfo> {
        let (gone, fresh) = IngressInfo::changes(&self.last, now);
        let fresh = if fresh.is_empty() {
            fresh
        } else {
            let gone: HashMap<&Key, (&Option<Arc<str>>, Option<i64>)> =
                gone.into_iter().map(|i| (&i.key, (&i.uid, i.generation))).collect();
            fresh.into_iter().filter(|i| gone.get(&i.key) != Some(&(&i.uid, i.generation))).collect()
        };
        self.last = now.clone();
        fresh
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn info(name: &str, generation: i64) -> Arc<IngressInfo> {
        Arc::new(IngressInfo {
            key: ("default".into(), name.into()),
            uid: Some(format!("uid-{name}").into()),
            generation: Some(generation),
            ..IngressInfo::default()
        })
    }

    fn names(list: Vec<&IngressInfo>) -> Vec<String> {
        list.into_iter().map(|i| format!("{}@{}", i.key.1, i.generation.unwrap())).collect()
    }

    #[test]
    fn a_sync_event_per_new_ingress_version_only() {
        let mut synced = Synced::default();
        let (a, b, c) = (info("a", 1), info("b", 1), info("c", 1));
        let first = IngressList::from_iter(vec![Arc::clone(&a), Arc::clone(&b), Arc::clone(&c)]);
        assert_eq!(names(synced.update(&first)), ["a@1", "b@1", "c@1"]);
        // The next table lists the same entries (a new list): nothing new.
        let same = IngressList::from_iter(vec![Arc::clone(&a), Arc::clone(&b), Arc::clone(&c)]);
        assert!(synced.update(&same).is_empty());
        // `b` translated again in the same generation (a Secret it reads changed), `c` in a new one.
        let (b_again, c2) = (info("b", 1), info("c", 2));
        let next = IngressList::from_iter(vec![Arc::clone(&a), Arc::clone(&b_again), Arc::clone(&c2)]);
        assert_eq!(names(synced.update(&next)), ["c@2"]);
        // `a` deleted, then created again: a Sync again.
        let without = IngressList::from_iter(vec![Arc::clone(&b_again), Arc::clone(&c2)]);
        assert!(synced.update(&without).is_empty());
        let again = IngressList::from_iter(vec![info("a", 1), Arc::clone(&b_again), Arc::clone(&c2)]);
        assert_eq!(names(synced.update(&again)), ["a@1"]);
    }
}
