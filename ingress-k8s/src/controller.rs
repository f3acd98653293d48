//! The running controller: sources, engine, leader election, status and events, started
//! together and stopped together.

use std::path::PathBuf;
use std::sync::Arc;

use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::engine::{self, Engine, Snapshot, Snapshots};
use crate::files::{ManifestDir, ManifestError};
use crate::{Config, Error, Kind, Result, events, lease, status, watch as source};

/// A running Kubernetes feed. The binary builds a [`Config`], starts one (from the cluster or
/// from manifest files), then hands each published [`Snapshot`] to the proxy.
///
/// Dropping it stops every task; [`Controller::shutdown`] also hands the Lease over at once.
pub struct Controller {
    snapshots: Snapshots,
    leader: watch::Receiver<bool>,
    manifest_errors: watch::Receiver<Vec<ManifestError>>,
    tasks: JoinSet<()>,
    client: Option<Client>,
    config: Config,
    /// Questions for the engine (the webhook's).
    asks: mpsc::UnboundedSender<engine::Ask>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("cluster", &self.client.is_some()).finish_non_exhaustive()
    }
}

impl Controller {
    /// Cluster mode: discovers the EndpointSlice API, starts the watchers and, when status or
    /// events are enabled, leader election. Returns at once; the first snapshot is published
    /// after every watcher's initial list (see [`Controller::ready`]).
    pub async fn start(client: Client, config: Config) -> Result<Self> {
        let slices = source::discover_slice_api(&client).await?;
        tracing::info!(?slices, namespace = ?config.watch_namespace, class = %config.ingress_class, "starting");
        let (mut engine, snapshots) = Engine::new(config.clone(), source::kinds(&config));
        let named = engine.watch_by_name();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        source::spawn(&client, &config, slices, &tx, &mut tasks);
        tasks.spawn(source::referenced_objects(client.clone(), config.clone(), named, tx.clone()));
        drop(tx);
        let (asks, asks_rx) = mpsc::unbounded_channel();
        tasks.spawn(engine::run(engine, rx, asks_rx));
        let (leader_tx, leader) = watch::channel(false);
        if config.update_status || config.emit_events {
            tasks.spawn(lease::run(client.clone(), config.clone(), leader_tx));
        }
        // Without a publish source there is no address to write: status is left alone.
        let publishes = config.publish_service.is_some() || !config.publish_status_address.is_empty();
        if config.update_status && publishes {
            tasks.spawn(status::run(client.clone(), snapshots.clone(), leader.clone()));
        }
        if config.emit_events {
            tasks.spawn(events::run(
                client.clone(),
                config.identity.clone(),
                snapshots.clone(),
                leader.clone(),
            ));
        }
        let (_, manifest_errors) = watch::channel(Vec::new());
        Ok(Self { snapshots, leader, manifest_errors, tasks, client: Some(client), config, asks })
    }

    /// Manifest mode (no cluster): reads every YAML/JSON document under `dir`, publishes, then
    /// re-reads changed files every [`Config::manifest_poll`]. Fails only if `dir` cannot be read.
    pub async fn from_manifests(dir: impl Into<PathBuf>, config: Config) -> Result<Self> {
        let mut manifests = ManifestDir::new(dir);
        manifests.scan()?;
        let (engine, snapshots) = Engine::new(config.clone(), [Kind::Ingress]);
        let (tx, rx) = mpsc::unbounded_channel();
        let (errors_tx, manifest_errors) = watch::channel(manifests.errors());
        // The receiver is alive (the engine task owns it), so this cannot fail.
        let _ = tx.send(manifests.take_all());
        let mut tasks = JoinSet::new();
        let (asks, asks_rx) = mpsc::unbounded_channel();
        tasks.spawn(engine::run(engine, rx, asks_rx));
        let poll = config.manifest_poll;
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                match manifests.scan() {
                    Ok(true) => {
                        if tx.send(manifests.take_update()).is_err() {
                            return;
                        }
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "manifest directory unreadable; keeping the last configuration"),
                }
                let errors = manifests.errors();
                errors_tx.send_if_modified(|old| (*old != errors).then(|| *old = errors).is_some());
            }
        });
        let (_, leader) = watch::channel(false);
        Ok(Self { snapshots, leader, manifest_errors, tasks, client: None, config, asks })
    }

    /// The publish channel: `None` until the initial sync, then every new snapshot.
    pub fn snapshots(&self) -> Snapshots {
        self.snapshots.clone()
    }

    /// The configuration it runs with (the election namespace resolved).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle for the validating admission webhook.
    pub fn validator(&self) -> Validator {
        Validator { asks: self.asks.clone(), snapshots: self.snapshots.clone() }
    }

    /// The latest snapshot, if the initial sync is done.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshots.borrow().clone()
    }

    /// Waits for the first snapshot: after it, the proxy serves the full configuration
    /// (what `/readyz` should mean).
    pub async fn ready(&self) -> Result<Arc<Snapshot>> {
        let mut rx = self.snapshots.clone();
        let snapshot = rx.wait_for(Option::is_some).await.map_err(|_| Error::Stopped)?;
        snapshot.clone().ok_or(Error::Stopped)
    }

    /// Whether this replica currently holds the leader Lease (always `false` in manifest mode).
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Manifest files whose current content does not parse (manifest mode).
    pub fn manifest_errors(&self) -> watch::Receiver<Vec<ManifestError>> {
        self.manifest_errors.clone()
    }

    /// Stops every task and, if this replica leads, releases the Lease so another replica
    /// takes over without waiting for it to expire.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
        if let Some(client) = self.client.take()
            && *self.leader.borrow()
        {
            lease::release(client, &self.config).await;
        }
    }
}

/// Asks a running controller whether an Ingress may be written (the validating admission
/// webhook). Cheap to clone; answers come from the engine's live store.
#[derive(Debug, Clone)]
pub struct Validator {
    asks: mpsc::UnboundedSender<engine::Ask>,
    snapshots: Snapshots,
}

impl Validator {
    /// Whether the first configuration is in: before it, the store is incomplete and answers
    /// would be guesses.
    pub fn is_ready(&self) -> bool {
        self.snapshots.borrow().is_some()
    }

    /// What the webhook answers for `ingress`, judged against the live store with it in place
    /// (see [`crate::validate`]). Fails only when the feed has stopped.
    pub async fn validate(
        &self,
        ingress: k8s_openapi::api::networking::v1::Ingress,
    ) -> Result<crate::Admission> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.asks.send(engine::Ask { ingress: Box::new(ingress), reply }).map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }
}
