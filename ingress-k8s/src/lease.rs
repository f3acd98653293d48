//! Leader election on a `coordination.k8s.io/v1` Lease, so that of many replicas exactly one
//! writes Ingress status and Events.
//!
//! The usual algorithm (client-go's): create the Lease if missing; the holder renews it every
//! `lease_renew`; anyone may take it over once `renewTime + leaseDurationSeconds` has passed.
//! Every write carries the `resourceVersion` it read, so two candidates cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::Config;

/// Runs for ever, keeping `leader` equal to "this replica holds the Lease".
pub(crate) async fn run(client: Client, config: Config, leader: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &config.election_namespace);
    let mut last_renewed: Option<tokio::time::Instant> = None;
    // The last failure reported: the same one again is logged at debug level only.
    let mut reported: Option<String> = None;
    loop {
        match try_acquire(&api, &config).await {
            Ok(true) => {
                reported = None;
                last_renewed = Some(tokio::time::Instant::now());
                if !*leader.borrow() {
                    tracing::info!(identity = %config.identity, lease = %config.election_id, "became leader");
                }
                leader.send_replace(true);
            }
            Ok(false) => {
                reported = None;
                if *leader.borrow() {
                    tracing::info!(identity = %config.identity, "lost leadership");
                }
                leader.send_replace(false);
            }
            Err(error) => {
                let text = error.to_string();
                if reported.as_deref() == Some(text.as_str()) {
                    tracing::debug!(%error, "lease update failed again");
                } else if missing_namespace(&error) {
                    tracing::error!(
                        namespace = %config.election_namespace,
                        lease = %config.election_id,
                        "namespace {} does not exist: no replica can hold the leader election Lease, so \
                         Ingress status and Events are not written until it is created (set POD_NAMESPACE \
                         to the controller's namespace)",
                        config.election_namespace
                    );
                } else {
                    tracing::warn!(%error, "lease update failed");
                }
                reported = Some(text);
                // Keep leading only while the Lease we last renewed is surely still ours.
                let expired = last_renewed.is_none_or(|t| t.elapsed() >= config.lease_duration);
                if expired && *leader.borrow() {
                    tracing::info!(identity = %config.identity, "leadership lapsed");
                    leader.send_replace(false);
                }
            }
        }
        tokio::time::sleep(config.lease_renew).await;
    }
}

/// Whether a failed Lease write says its namespace does not exist (`404` on create).
fn missing_namespace(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(e) if e.code == 404 && e.message.contains("namespaces"))
}

/// Releases the Lease if this replica holds it, so a successor need not wait for it to expire.
pub(crate) async fn release(client: Client, config: &Config) {
    let api: Api<Lease> = Api::namespaced(client, &config.election_namespace);
    let Ok(mut lease) = api.get(&config.election_id).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    match api.replace(&config.election_id, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(identity = %config.identity, "released leadership"),
        Err(error) => tracing::warn!(%error, "could not release the lease"),
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// One round: `Ok(true)` when this replica holds the Lease afterwards.
async fn try_acquire(api: &Api<Lease>, config: &Config) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let fresh = LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(seconds(config.lease_duration)),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(0),
        ..LeaseSpec::default()
    };
    let Some(mut lease) = api.get_opt(&config.election_id).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(config.election_id.clone()), ..ObjectMeta::default() },
            spec: Some(fresh),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let mine = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    if mine {
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds(config.lease_duration));
    } else {
        let held = spec.holder_identity.as_deref().is_some_and(|h| !h.is_empty());
        let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
        let expires = spec.renew_time.as_ref().map(|t| t.0 + duration);
        if held && expires.is_some_and(|e| e > now) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + 1;
        *spec = LeaseSpec { lease_transitions: Some(transitions), ..fresh };
    }
    match api.replace(&config.election_id, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
