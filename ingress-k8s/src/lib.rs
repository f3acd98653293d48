//! `ingress-k8s`: the Kubernetes feed of the Ferry ingress controller.
//!
//! Watches Ingresses, IngressClasses, Services, EndpointSlices, TLS Secrets and one ConfigMap
//! (or reads the same kinds from manifest files), translates them with one pure function
//! ([`translate`]) into the `ingress-core` model, and publishes route tables through a
//! [`tokio::sync::watch`] channel. Endpoint-only changes update the shared endpoint slots in
//! place, without a new table. The leader (a `coordination.k8s.io/v1` Lease) writes Ingress
//! status and Events.
//!
//! ```no_run
//! # async fn run() -> ingress_k8s::Result<()> {
//! let client = kube::Client::try_default().await.map_err(|e| ingress_k8s::Error::Kube { context: "connect".into(), source: e })?;
//! let controller = ingress_k8s::Controller::start(client, ingress_k8s::Config::default()).await?;
//! let mut snapshots = controller.snapshots();
//! let first = controller.ready().await?;
//! # drop(first);
//! while snapshots.changed().await.is_ok() {
//!     let snapshot = snapshots.borrow_and_update().clone();
//!     // hand snapshot.table to the proxy
//! #   drop(snapshot);
//! }
//! # Ok(()) }
//! ```

mod admission;
pub mod annotations;
mod config;
mod controller;
mod engine;
mod error;
mod events;
mod files;
mod lease;
mod list;
mod objects;
mod rate;
mod selector;
mod status;
mod stored;
mod translate;
mod watch;

pub use admission::{Admission, validate};
pub use annotations::{AnnotationReport, Verdict as AnnotationVerdict};
pub use config::{Config, ObjectName};
pub use controller::{Controller, Validator};
pub use engine::{Snapshot, Snapshots};
pub use error::{Error, Result};
pub use events::REPORTER;
pub use files::{ManifestDir, ManifestError, legacy_ingress, parse_manifest};
pub use list::list_once;
pub use objects::{Change, Changed, Key, Kind, Object, Objects, key_of};
pub use selector::LabelSelector;
pub use stored::{
    StoredAnnotations, StoredBackend, StoredIngress, StoredPath, StoredPathType, StoredRule, StoredService,
    StoredServiceBackend, StoredServicePort, StoredSlice,
};
pub use translate::{
    CacheStats, CertificateCache, EndpointEntry, EndpointList, IngressInfo, IngressList, Keyed, Problem,
    ServiceEndpoints, Severity, SortedList, Translation, TranslationCache, translate, translate_changed,
    translate_with,
};
pub use watch::{SliceApi, discover_slice_api};
