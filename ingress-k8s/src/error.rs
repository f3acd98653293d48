//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong while feeding the routing model. Problems with single objects are not
/// errors: they are [`Problem`](crate::Problem)s, reported and routed around.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the API server failed (connecting, listing, discovery, writing status).
    #[error("kubernetes API: {context}")]
    Kube {
        /// What the controller was doing.
        context: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The client configuration (kubeconfig, in-cluster) could not be loaded.
    #[error("kubernetes client configuration")]
    ClientConfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A configuration value is malformed (e.g. `--configmap` without a `/`).
    #[error("invalid configuration `{field}`: {why}")]
    Config {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A manifest directory or file could not be read.
    #[error("reading {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The controller stopped (its task ended) before publishing.
    #[error("the controller stopped")]
    Stopped,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn kube(context: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube { context: context.into(), source }
    }
}
