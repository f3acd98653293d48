//! Command-line flags. Every flag can also come from an environment variable (shown in
//! `--help`); names follow ingress-nginx where it has one, so migration guides carry over.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ingress_k8s::ObjectName;

/// The Ferry ingress controller.
#[derive(Debug, Parser)]
#[command(name = "ingress-controller", version, about, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the controller (the default when no sub-command is given).
    Run(Box<RunArgs>),
    /// Show which Ingress, rule and path a URL would be routed by, and why (or where a TCP or
    /// UDP service port forwards: `tcp://:PORT`).
    Explain(ExplainArgs),
    /// Validate manifests offline: what is accepted, what is rejected and why (exit 1 if any).
    Check(CheckArgs),
    /// Provision the validating webhook's certificate in the cluster (a Job of `deploy/` runs
    /// it): a CA and serving certificate in a Secret, the CA in the webhook's `caBundle`.
    WebhookCertificate(CertgenArgs),
    /// Print the version.
    Version,
}

/// Where the Kubernetes objects come from, and which of them are ours.
#[derive(Debug, Clone, Args)]
pub(crate) struct SourceArgs {
    /// Standalone mode: read Kubernetes YAML/JSON from this directory instead of a cluster.
    #[arg(long, env = "FERRY_MANIFESTS", value_name = "DIR")]
    pub(crate) manifests: Option<PathBuf>,
    /// Kubeconfig to reach the API server (default: in-cluster config, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG", value_name = "PATH", conflicts_with = "manifests")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Our class name: also matched against the legacy `kubernetes.io/ingress.class` annotation.
    #[arg(long, env = "FERRY_INGRESS_CLASS", default_value = "ferry")]
    pub(crate) ingress_class: String,
    /// Our controller value: IngressClasses whose `spec.controller` equals it are ours.
    #[arg(long, env = "FERRY_CONTROLLER_CLASS", default_value = "ferry.dev/ingress-controller")]
    pub(crate) controller_class: String,
    /// Also serve Ingresses that name no class.
    #[arg(long, env = "FERRY_WATCH_INGRESS_WITHOUT_CLASS")]
    pub(crate) watch_ingress_without_class: bool,
    /// The IngressClass named by `--ingress-class` is ours whatever its `spec.controller`.
    #[arg(long, env = "FERRY_INGRESS_CLASS_BY_NAME")]
    pub(crate) ingress_class_by_name: bool,
    /// TLS passthrough: the HTTPS port reads each connection's ClientHello, and passes the
    /// connections for hosts whose Ingress has `ssl-passthrough` to the host's `/` backend
    /// without terminating them.
    #[arg(long, env = "FERRY_ENABLE_SSL_PASSTHROUGH")]
    pub(crate) enable_ssl_passthrough: bool,
    /// Leave out Ingresses with `spec.defaultBackend` (catch-all Ingresses), reported.
    #[arg(long, env = "FERRY_DISABLE_CATCH_ALL")]
    pub(crate) disable_catch_all: bool,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "FERRY_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub(crate) watch_namespace: Option<String>,
    /// Serve only the Ingresses of namespaces whose labels this selector selects (e.g.
    /// `team=web,env in (prod,staging)`), judged live as namespaces are labelled.
    #[arg(long, env = "FERRY_WATCH_NAMESPACE_SELECTOR", value_name = "SELECTOR")]
    pub(crate) watch_namespace_selector: Option<ingress_k8s::LabelSelector>,
    /// The ConfigMap with global settings (ingress-nginx key names), as namespace/name.
    #[arg(long, env = "FERRY_CONFIGMAP", value_name = "NS/NAME")]
    pub(crate) configmap: Option<ObjectName>,
    /// The Service that answers requests no rule matches, as namespace/name (default: the
    /// built-in `default backend - 404`).
    #[arg(long, env = "FERRY_DEFAULT_BACKEND_SERVICE", value_name = "NS/NAME")]
    pub(crate) default_backend_service: Option<ObjectName>,
    /// The TLS Secret for handshakes no Ingress claims, as namespace/name (default: a
    /// self-signed certificate generated at start-up).
    #[arg(long, env = "FERRY_DEFAULT_SSL_CERTIFICATE", value_name = "NS/NAME")]
    pub(crate) default_ssl_certificate: Option<ObjectName>,
    /// The ConfigMap of TCP services, as namespace/name: each key a port to listen on, each
    /// value `namespace/service:port[:PROXY[:PROXY]]` (ingress-nginx's format).
    #[arg(long, env = "FERRY_TCP_SERVICES_CONFIGMAP", value_name = "NS/NAME")]
    pub(crate) tcp_services_configmap: Option<ObjectName>,
    /// The ConfigMap of UDP services, as namespace/name: each key a port, each value
    /// `namespace/service:port`.
    #[arg(long, env = "FERRY_UDP_SERVICES_CONFIGMAP", value_name = "NS/NAME")]
    pub(crate) udp_services_configmap: Option<ObjectName>,
    /// The prefix of the annotations read, as ingress-nginx's flag of the same name.
    #[arg(long, env = "FERRY_ANNOTATIONS_PREFIX", default_value = ingress_k8s::annotations::DEFAULT_PREFIX)]
    pub(crate) annotations_prefix: String,
}

/// How the proxy logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// `on`/`off` (also `true`/`false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    /// Enabled.
    #[value(alias = "true")]
    On,
    /// Disabled.
    #[value(alias = "false")]
    Off,
}

/// Flags of the running controller.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Port for plain HTTP.
    #[arg(long, env = "FERRY_HTTP_PORT", default_value_t = 80)]
    pub(crate) http_port: u16,
    /// Port for HTTPS (HTTP/1.1 and HTTP/2).
    #[arg(long, env = "FERRY_HTTPS_PORT", default_value_t = 443)]
    pub(crate) https_port: u16,
    /// Port for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "FERRY_ADMIN_PORT", default_value_t = 10254)]
    pub(crate) admin_port: u16,
    /// The path the admin port's health check also answers at (ingress-nginx's flag; `/healthz`
    /// answers in any case: the process lives).
    #[arg(long, env = "FERRY_HEALTH_CHECK_PATH", default_value = "/healthz")]
    pub(crate) health_check_path: String,
    /// ingress-nginx's status port, on 127.0.0.1: `/nginx_status` (nginx's `stub_status`
    /// format) and the health check path. Off unless given.
    #[arg(long, env = "FERRY_STATUS_PORT")]
    pub(crate) status_port: Option<u16>,
    /// ingress-nginx's default server port: `404` for every request. Off unless given.
    #[arg(long, env = "FERRY_DEFAULT_SERVER_PORT")]
    pub(crate) default_server_port: Option<u16>,
    /// With `--enable-ssl-passthrough`, the port on 127.0.0.1 where the HTTPS port's own TLS
    /// listener moves (behind the passthrough front).
    #[arg(long, env = "FERRY_SSL_PASSTHROUGH_PROXY_PORT", default_value_t = 442)]
    pub(crate) ssl_passthrough_proxy_port: u16,
    /// Address the three listeners bind to.
    #[arg(long, env = "FERRY_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub(crate) bind_address: std::net::IpAddr,
    /// The Service whose load-balancer address is written into Ingress status, namespace/name.
    #[arg(long, env = "FERRY_PUBLISH_SERVICE", value_name = "NS/NAME")]
    pub(crate) publish_service: Option<ObjectName>,
    /// Addresses written into Ingress status instead (comma-separated IPs or hostnames).
    #[arg(long, env = "FERRY_PUBLISH_STATUS_ADDRESS", value_delimiter = ',')]
    pub(crate) publish_status_address: Vec<String>,
    /// The Lease used for leader election (only the leader writes status and events).
    #[arg(long, env = "FERRY_ELECTION_ID", default_value = "ingress-ferry-leader")]
    pub(crate) election_id: String,
    /// Whether to write `status.loadBalancer` on our Ingresses.
    #[arg(long, env = "FERRY_UPDATE_STATUS", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) update_status: bool,
    /// Write no Kubernetes Events (ingress-nginx's flag: its recorder then only logs them; so do
    /// we, as every problem is logged anyway).
    #[arg(long, env = "FERRY_DISABLE_SYNC_EVENTS")]
    pub(crate) disable_sync_events: bool,
    /// Log format.
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// One access log line per request.
    #[arg(long, env = "FERRY_ACCESS_LOG", value_enum, default_value_t = Switch::On)]
    pub(crate) access_log: Switch,
    /// This replica's name (the Lease holder identity); set from the downward API.
    #[arg(long, env = "POD_NAME", default_value = "ferry")]
    pub(crate) pod_name: String,
    /// The namespace of the election Lease; set from the downward API. Unset: the namespace
    /// of the kubeconfig's context (in a cluster, the pod's service account's).
    #[arg(long, env = "POD_NAMESPACE")]
    pub(crate) pod_namespace: Option<String>,
    /// Proxy worker threads (default: one per CPU).
    #[arg(long, env = "FERRY_THREADS")]
    pub(crate) threads: Option<usize>,
    /// Log verbosity as klog's (ingress-nginx's `--v`): up to 2 info, 3–4 Ferry's debug
    /// lines, 5 and more its trace lines. `RUST_LOG`, when set, decides instead.
    #[arg(long = "v", env = "FERRY_V", default_value_t = 0, value_name = "LEVEL")]
    pub(crate) verbosity: u8,
    /// Serve the validating admission webhook on this address (`:8443`, ingress-nginx's form),
    /// with the two files below.
    #[arg(long, env = "FERRY_VALIDATING_WEBHOOK", value_name = "ADDR", requires_all = ["validating_webhook_certificate", "validating_webhook_key"])]
    pub(crate) validating_webhook: Option<String>,
    /// The webhook's certificate chain (PEM), e.g. a mounted Secret's `cert`.
    #[arg(long, env = "FERRY_VALIDATING_WEBHOOK_CERTIFICATE", value_name = "PATH")]
    pub(crate) validating_webhook_certificate: Option<PathBuf>,
    /// The webhook's private key (PEM).
    #[arg(long, env = "FERRY_VALIDATING_WEBHOOK_KEY", value_name = "PATH")]
    pub(crate) validating_webhook_key: Option<PathBuf>,
    /// ingress-nginx's request series carry a `host` label, for the exact hosts of Ingresses
    /// only (as ingress-nginx's `--metrics-per-host`); off: no `host` label, every request.
    #[arg(long, env = "FERRY_METRICS_PER_HOST", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) metrics_per_host: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "FERRY_SHUTDOWN_GRACE_PERIOD", default_value_t = 30)]
    pub(crate) shutdown_grace_period: u64,
}

/// Output format of `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// For people.
    Text,
    /// For tools.
    Json,
}

/// Flags of `explain`.
#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// The URL to explain, e.g. `http://demo.example.com/index.html`, or a TCP or UDP service
    /// port, e.g. `tcp://:5432`.
    pub(crate) url: String,
}

/// Flags of `webhook-certificate`.
#[derive(Debug, Args)]
pub(crate) struct CertgenArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// The namespace of the Secret and the Service.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ingress-ferry")]
    pub(crate) namespace: String,
    /// The Secret to create (kept when it exists): keys `ca`, `cert`, `key`.
    #[arg(long, default_value = "ingress-ferry-admission")]
    pub(crate) secret: String,
    /// The webhook's Service: the certificate names it (`svc`, `svc.ns`, `svc.ns.svc`…).
    #[arg(long, default_value = "ingress-ferry-admission")]
    pub(crate) service: String,
    /// The ValidatingWebhookConfiguration whose `caBundle` is set.
    #[arg(long, default_value = "ingress-ferry-admission")]
    pub(crate) webhook: String,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 3650)]
    pub(crate) days: u32,
}

/// Flags of `check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub(crate) output: ReportFormat,
}

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One line per finding, summary first.
    Text,
    /// For tools.
    Json,
    /// To paste into a migration ticket.
    Markdown,
}

impl SourceArgs {
    /// The Kubernetes feed's configuration for these flags.
    pub(crate) fn k8s_config(&self) -> ingress_k8s::Config {
        ingress_k8s::Config {
            ingress_class: self.ingress_class.clone(),
            controller_name: self.controller_class.clone(),
            watch_ingress_without_class: self.watch_ingress_without_class,
            ingress_class_by_name: self.ingress_class_by_name,
            disable_catch_all: self.disable_catch_all,
            watch_namespace: self.watch_namespace.clone(),
            watch_namespace_selector: self.watch_namespace_selector.clone(),
            configmap: self.configmap.clone(),
            default_backend_service: self.default_backend_service.clone(),
            default_ssl_certificate: self.default_ssl_certificate.clone(),
            annotations_prefix: self.annotations_prefix.clone(),
            tcp_services_configmap: self.tcp_services_configmap.clone(),
            udp_services_configmap: self.udp_services_configmap.clone(),
            // The run command's default ports; `RunArgs::k8s_config` names the real ones.
            reserved_ports: vec![80, 443, 10254],
            ssl_passthrough: self.enable_ssl_passthrough,
            ..ingress_k8s::Config::default()
        }
    }
}

impl RunArgs {
    /// The Kubernetes feed's configuration, with status and election settings.
    pub(crate) fn k8s_config(&self) -> ingress_k8s::Config {
        ingress_k8s::Config {
            publish_service: self.publish_service.clone(),
            publish_status_address: self.publish_status_address.clone(),
            update_status: self.update_status,
            emit_events: !self.disable_sync_events,
            election_id: self.election_id.clone(),
            // Unset: `run` takes the client's default namespace.
            election_namespace: self.pod_namespace.clone().unwrap_or_default(),
            identity: self.pod_name.clone(),
            reserved_ports: [self.http_port, self.https_port, self.admin_port]
                .into_iter()
                .chain(self.source.enable_ssl_passthrough.then_some(self.ssl_passthrough_proxy_port))
                .collect(),
            ..self.source.k8s_config()
        }
    }
}
