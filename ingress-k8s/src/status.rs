//! Ingress status: the leader writes `status.loadBalancer.ingress` on our Ingresses.
//!
//! Only Ingresses in the snapshot's list are touched, and that list holds only Ingresses of our
//! class, so other controllers' Ingresses are never written.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::translate::IngressInfo;
use crate::{Snapshot, Snapshots};

/// How often the leader checks every Ingress's status again, even when nothing changed (a
/// failed write is retried then).
const RESYNC: Duration = Duration::from_secs(30);

/// Status writes per second, and how many may go at once after a quiet spell. ingress-nginx
/// writes with ten workers and no rate limit; a start-up (or a new load-balancer address) with
/// 10,000 Ingresses to correct then writes them all as fast as the API server takes them,
/// while every write comes back to each controller as an Ingress change. Here 10,000 take
/// 100 s; after a quiet spell, up to 100 go at once.
const PER_SECOND: u32 = 100;
const BURST: u32 = 100;

/// The `status.loadBalancer.ingress` entries for `addresses` (IP or hostname each).
pub(crate) fn lb_entries(addresses: &[String]) -> serde_json::Value {
    addresses
        .iter()
        .map(|a| match a.parse::<IpAddr>() {
            Ok(_) => serde_json::json!({ "ip": a }),
            Err(_) => serde_json::json!({ "hostname": a }),
        })
        .collect()
}

/// Runs for ever: whenever a new snapshot arrives or leadership changes, the leader brings our
/// Ingresses' status to the published addresses. Every Ingress is looked at on gaining
/// leadership, when the addresses change and every [`RESYNC`]; otherwise only those a snapshot
/// lists in a new version ([`IngressInfo::changes`]), so a snapshot costs what changed, not a
/// comparison per Ingress. A failed write is retried at the next full look.
pub(crate) async fn run(client: Client, mut snapshots: Snapshots, mut leader: watch::Receiver<bool>) {
    let mut rate = crate::rate::Rate::new(PER_SECOND, BURST);
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    // The snapshot last brought up to date; `None`: look at every Ingress next time.
    let mut checked: Option<Arc<Snapshot>> = None;
    loop {
        let leading = *leader.borrow_and_update();
        let snapshot = snapshots.borrow_and_update().clone();
        match (leading, snapshot) {
            (true, Some(snapshot)) => {
                let mut done = true;
                for ingress in to_write(checked.as_deref(), &snapshot) {
                    // Leadership can go while thousands wait for the rate.
                    if !*leader.borrow() {
                        done = false;
                        break;
                    }
                    rate.take().await;
                    write(&client, ingress, &snapshot.status_addresses).await;
                }
                checked = done.then_some(snapshot);
            }
            (false, _) => checked = None,
            (true, None) => {}
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            _ = resync.tick() => checked = None,
        }
    }
}

/// The Ingresses of `now` whose status differs from its addresses: among those in a new version
/// since `last` (when the addresses are the same), else among all.
fn to_write<'a>(last: Option<&Snapshot>, now: &'a Snapshot) -> Vec<&'a IngressInfo> {
    let want = &*now.status_addresses;
    let candidates = match last {
        Some(last) if *last.status_addresses == *want => {
            IngressInfo::changes(&last.ingresses, &now.ingresses).1
        }
        _ => now.ingresses.iter().map(|i| &**i).collect(),
    };
    candidates.into_iter().filter(|i| i.status != *want).collect()
}

/// Writes `addresses` into the status of `ingress`.
async fn write(client: &Client, ingress: &IngressInfo, addresses: &[String]) {
    let (ns, name) = &ingress.key;
    let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({ "status": { "loadBalancer": { "ingress": lb_entries(addresses) } } });
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => tracing::info!(ingress = %format!("{ns}/{name}"), ?addresses, "status updated"),
        Err(error) => tracing::warn!(ingress = %format!("{ns}/{name}"), %error, "status update failed"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(name: &str, status: &[&str]) -> Arc<IngressInfo> {
        Arc::new(IngressInfo {
            key: ("default".into(), name.into()),
            status: status.iter().map(|s| (*s).to_owned()).collect(),
            ..IngressInfo::default()
        })
    }

    fn snapshot(ingresses: Vec<Arc<IngressInfo>>, addresses: &[&str]) -> Snapshot {
        Snapshot {
            table: Arc::new(
                ingress_core::TableBuilder::new().build(&mut ingress_core::EndpointStore::new()).table,
            ),
            config: Arc::default(),
            config_references: Arc::default(),
            referenced_config_maps: Arc::default(),
            referenced_secrets: Arc::default(),
            problems: Arc::default(),
            ingresses: ingresses.into_iter().collect(),
            status_addresses: Arc::new(addresses.iter().map(|s| (*s).to_owned()).collect()),
            generation: 1,
            relists: 0,
        }
    }

    fn names(list: Vec<&IngressInfo>) -> Vec<&str> {
        list.into_iter().map(|i| &*i.key.1).collect()
    }

    #[test]
    fn only_ingresses_in_a_new_version_are_looked_at_until_the_addresses_change() {
        let ip = ["192.0.2.1"];
        let (a, b, c) = (info("a", &ip), info("b", &[]), info("c", &[]));
        let first = snapshot(vec![Arc::clone(&a), Arc::clone(&b), Arc::clone(&c)], &ip);
        assert_eq!(names(to_write(None, &first)), ["b", "c"], "every one at first");
        // `b` was written (its new version came back), `c`'s write failed: only `b` is new, and
        // its status is right. `c` waits for the resync (which forgets `last`).
        let second = snapshot(vec![Arc::clone(&a), info("b", &ip), Arc::clone(&c)], &ip);
        assert!(to_write(Some(&first), &second).is_empty());
        assert_eq!(names(to_write(None, &second)), ["c"]);
        // Someone else writes `a`'s status: it is new, and wrong.
        let b_written = Arc::clone(second.ingresses.iter().nth(1).unwrap());
        let third = snapshot(vec![info("a", &["198.51.100.9"]), b_written, c], &ip);
        assert_eq!(names(to_write(Some(&second), &third)), ["a"]);
        // New addresses: every Ingress again.
        let moved = snapshot(third.ingresses.iter().cloned().collect(), &["192.0.2.2"]);
        assert_eq!(names(to_write(Some(&third), &moved)), ["a", "b", "c"]);
    }
}
