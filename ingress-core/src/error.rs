//! Rejections: what the builder refused, where it was written, and why.

use std::fmt;

use crate::Origin;

/// Which field of an Ingress a rejection is about, spelled as in the Kubernetes API so users
/// can find it in their YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The whole object.
    Object,
    /// `spec.defaultBackend`.
    DefaultBackend,
    /// `spec.rules[rule].host`.
    Host {
        /// Index in `spec.rules`.
        rule: u32,
    },
    /// `spec.rules[rule].http.paths[path]`.
    Path {
        /// Index in `spec.rules`.
        rule: u32,
        /// Index in the rule's `http.paths`.
        path: u32,
    },
    /// `spec.tls[entry].hosts[host]`, or `spec.tls[entry]` when `host` is `None`.
    Tls {
        /// Index in `spec.tls`.
        entry: u32,
        /// Index in the entry's `hosts`.
        host: Option<u32>,
    },
    /// An annotation that shapes the table (`server-alias`), by its name without the prefix.
    Annotation(&'static str),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Object => f.write_str("(object)"),
            Field::DefaultBackend => f.write_str("spec.defaultBackend"),
            Field::Host { rule } => write!(f, "spec.rules[{rule}].host"),
            Field::Path { rule, path } => write!(f, "spec.rules[{rule}].http.paths[{path}]"),
            Field::Tls { entry, host: Some(h) } => write!(f, "spec.tls[{entry}].hosts[{h}]"),
            Field::Tls { entry, host: None } => write!(f, "spec.tls[{entry}]"),
            Field::Annotation(name) => write!(f, "annotation {name}"),
        }
    }
}

/// Why the builder refused a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// The host is not a valid DNS name or wildcard.
    #[error("invalid host `{host}`: {why}")]
    InvalidHost {
        /// The host as written.
        host: String,
        /// What is wrong with it.
        why: String,
    },
    /// The path is not valid for its path type.
    #[error("invalid path `{path}`: {why}")]
    InvalidPath {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// Another rule for the same host, path and path type won (it is older, or earlier in the
    /// same Ingress).
    #[error("duplicate of `{winner_field}` in {winner}, which takes precedence (older, or first)")]
    Duplicate {
        /// The Ingress whose rule won.
        winner: Origin,
        /// Where the winning rule is written.
        winner_field: Field,
    },
    /// The backend names a Service port by name and the Service has no port of that name.
    #[error("service `{namespace}/{service}` has no port named `{port}`")]
    UnknownPortName {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        service: String,
        /// The port name asked for.
        port: String,
    },
    /// The backend names a Service port by number and the Service has no such port.
    #[error("service `{namespace}/{service}` has no port {port}")]
    UnknownPortNumber {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        service: String,
        /// The port number asked for.
        port: u16,
    },
    /// The Ingress has neither rules nor a default backend, so it routes nothing.
    #[error("has neither rules nor a default backend")]
    Empty,
    /// A `server-alias` name that is not served (not a valid name, or taken).
    #[error("alias `{alias}`: {why}")]
    Alias {
        /// The alias as written.
        alias: String,
        /// Why it is not served.
        why: String,
    },
    /// A canary path that no route of another Ingress has (same host, path and path type), or
    /// that another canary already splits: it carries no traffic.
    #[error("canary: {why}")]
    Canary {
        /// Why the canary path carries no traffic.
        why: String,
    },
    /// `ssl-passthrough` asked for a host it cannot apply to.
    #[error("ssl-passthrough for host `{host}`: {why}")]
    Passthrough {
        /// The host.
        host: String,
        /// Why its TLS connections are terminated after all.
        why: String,
    },
}

/// A rule the builder refused, with where it came from and why. Everything else still routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The Ingress the rule belongs to.
    pub origin: Origin,
    /// Where in that Ingress the rule is written.
    pub field: Field,
    /// Why it was refused.
    pub reason: Reason,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ingress {} {}: {}", self.origin, self.field, self.reason)
    }
}
