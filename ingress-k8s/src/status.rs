//! Ingress status: the leader writes `status.loadBalancer.ingress` on our Ingresses.
//!
//! Only Ingresses in the snapshot's list are touched, and that list holds only Ingresses of our
//! class, so other controllers' Ingresses are never written.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::Snapshots;

/// How often the leader re-checks status even when nothing changed (a failed write retries).
const RESYNC: Duration = Duration::from_secs(30);

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

/// Runs for ever: whenever a new snapshot arrives or leadership changes, the leader brings
/// every one of our Ingresses' status to the published addresses.
pub(crate) async fn run(client: Client, mut snapshots: Snapshots, mut leader: watch::Receiver<bool>) {
    loop {
        let leading = *leader.borrow_and_update();
        if leading {
            let snapshot = snapshots.borrow_and_update().clone();
            if let Some(snapshot) = snapshot {
                let want = &*snapshot.status_addresses;
                for ingress in snapshot.ingresses.iter().filter(|i| i.status != *want) {
                    let (ns, name) = &ingress.key;
                    let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
                    let patch =
                        serde_json::json!({ "status": { "loadBalancer": { "ingress": lb_entries(want) } } });
                    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => {
                            tracing::info!(ingress = %format!("{ns}/{name}"), addresses = ?want, "status updated");
                        }
                        Err(error) => {
                            tracing::warn!(ingress = %format!("{ns}/{name}"), %error, "status update failed");
                        }
                    }
                }
            }
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}
