//! ingress-nginx's command line, taken as it is: an ingress-nginx Deployment or Helm release
//! whose image is swapped for Ferry's starts with its arguments unchanged.
//!
//! Before the flags are parsed, the arguments are read against [`FLAGS`], every flag of
//! ingress-nginx's `pkg/flags` and its klog logging flags: one Ferry has with the same meaning
//! passes (under Ferry's name where it differs), one it does not apply is taken out and
//! reported once at start-up with the reason, so none stops start-up. The program name
//! `/nginx-ingress-controller`, as ingress-nginx's manifests give it (as the first argument
//! or the binary's name), runs the controller.

use std::ffi::OsString;

/// What Ferry does with one ingress-nginx flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treatment {
    /// Ferry's flag of the same name, with the same meaning.
    Same,
    /// Ferry's flag of another name, with the same meaning.
    Renamed(&'static str),
    /// Accepted and not applied, for this reason (reported at start-up).
    Ignored(&'static str),
}

/// Whether a flag takes a value (`--name value` or `--name=value`) or is a boolean
/// (`--name`, `--name=false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    Value,
    Bool,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag {
    pub(crate) name: &'static str,
    pub(crate) arity: Arity,
    pub(crate) treatment: Treatment,
}

const fn flag(name: &'static str, arity: Arity, treatment: Treatment) -> Flag {
    Flag { name, arity, treatment }
}

use Arity::{Bool, Value};
use Treatment::{Ignored, Renamed, Same};

const NOT_YET: &str = "not supported yet";
const NO_NGINX: &str = "there is no nginx process: Ferry's proxy is configured in memory, never reloaded";
const LOGS: &str = "klog's logging flag; Ferry's logs follow RUST_LOG and --log-format";
const KUBECONFIG: &str = "give the API server through --kubeconfig (or the in-cluster configuration)";
const METRICS: &str = "Ferry's metrics and ingress-nginx's `nginx_ingress_controller_*` series are always on, at /metrics of the admin port, with ingress-nginx's default buckets";
const LEADER: &str =
    "Ferry always elects a leader (only it writes status and events); the Lease's timings are fixed";
const GEOIP: &str = "GeoIP databases are not supported";

/// Every ingress-nginx flag, sorted by name.
pub(crate) const FLAGS: &[Flag] = &[
    flag("add_dir_header", Bool, Ignored(LOGS)),
    flag("alsologtostderr", Bool, Ignored(LOGS)),
    flag("annotations-prefix", Value, Same),
    flag("apiserver-host", Value, Ignored(KUBECONFIG)),
    flag("bucket-factor", Value, Ignored(METRICS)),
    flag("certificate-authority", Value, Ignored(KUBECONFIG)),
    flag("configmap", Value, Same),
    flag("controller-class", Value, Same),
    flag(
        "deep-inspect",
        Bool,
        Ignored("Ferry never runs configuration text, so there is nothing to inspect for it"),
    ),
    flag("default-backend-service", Value, Same),
    flag("default-server-port", Value, Same),
    flag("default-ssl-certificate", Value, Same),
    flag("disable-catch-all", Bool, Same),
    flag("disable-full-test", Bool, Ignored(NO_NGINX)),
    flag("disable-leader-election", Bool, Ignored(LEADER)),
    flag("disable-svc-external-name", Bool, Ignored("ExternalName Services are not supported as backends")),
    flag("disable-sync-events", Bool, Same),
    flag("dynamic-configuration-retries", Value, Ignored(NO_NGINX)),
    flag("election-id", Value, Same),
    flag("election-ttl", Value, Ignored(LEADER)),
    flag(
        "enable-annotation-validation",
        Bool,
        Ignored("every annotation is always validated, and its verdict reported"),
    ),
    flag("enable-metrics", Bool, Ignored(METRICS)),
    flag("enable-ssl-chain-completion", Bool, Ignored(NOT_YET)),
    flag("enable-ssl-passthrough", Bool, Same),
    flag("enable-topology-aware-routing", Bool, Ignored(NOT_YET)),
    flag("exclude-socket-metrics", Value, Ignored(METRICS)),
    flag("health-check-path", Value, Same),
    flag("health-check-timeout", Value, Ignored(NO_NGINX)),
    flag("healthz-host", Value, Ignored("the admin port listens on --bind-address")),
    flag("healthz-port", Value, Renamed("admin-port")),
    flag("http-port", Value, Same),
    flag("https-port", Value, Same),
    flag("ingress-class", Value, Same),
    flag("ingress-class-by-name", Bool, Same),
    flag("internal-logger-address", Value, Ignored(NO_NGINX)),
    flag("kubeconfig", Value, Same),
    flag("length-buckets", Value, Ignored(METRICS)),
    flag("log_backtrace_at", Value, Ignored(LOGS)),
    flag("log_dir", Value, Ignored(LOGS)),
    flag("log_file", Value, Ignored(LOGS)),
    flag("log_file_max_size", Value, Ignored(LOGS)),
    flag("logtostderr", Bool, Ignored(LOGS)),
    flag("max-buckets", Value, Ignored(METRICS)),
    flag("maxmind-edition-ids", Value, Ignored(GEOIP)),
    flag("maxmind-license-key", Value, Ignored(GEOIP)),
    flag("maxmind-mirror", Value, Ignored(GEOIP)),
    flag("maxmind-retries-count", Value, Ignored(GEOIP)),
    flag("maxmind-retries-timeout", Value, Ignored(GEOIP)),
    flag("metrics-per-host", Bool, Same),
    flag("metrics-per-undefined-host", Bool, Ignored(METRICS)),
    flag("monitor-max-batch-size", Value, Ignored(METRICS)),
    flag("one_output", Bool, Ignored(LOGS)),
    flag("post-shutdown-grace-period", Value, Ignored(NO_NGINX)),
    flag("profiler-port", Value, Ignored("Go's profiler has no counterpart")),
    flag("profiling", Bool, Ignored("Go's profiler has no counterpart")),
    flag("publish-service", Value, Same),
    flag("publish-status-address", Value, Same),
    flag("report-node-internal-ip-address", Bool, Ignored(NOT_YET)),
    flag("report-status-classes", Bool, Ignored(METRICS)),
    flag("shutdown-grace-period", Value, Same),
    flag("size-buckets", Value, Ignored(METRICS)),
    flag("skip_headers", Bool, Ignored(LOGS)),
    flag("skip_log_headers", Bool, Ignored(LOGS)),
    flag("ssl-passthrough-proxy-port", Value, Same),
    flag("status-port", Value, Same),
    flag(
        "status-update-interval",
        Value,
        Ignored("status is written as soon as an Ingress or the published address changes"),
    ),
    flag("stderrthreshold", Value, Ignored(LOGS)),
    flag("stream-port", Value, Ignored(NO_NGINX)),
    flag("sync-period", Value, Ignored("Ferry watches; there is no periodic resync")),
    flag(
        "sync-rate-limit",
        Value,
        Ignored("changes apply as they come, coalesced in a short window; there is no rate limit"),
    ),
    flag("tcp-services-configmap", Value, Same),
    flag("time-buckets", Value, Ignored(METRICS)),
    flag("udp-services-configmap", Value, Same),
    flag("update-status", Bool, Same),
    flag("update-status-on-shutdown", Bool, Ignored(NOT_YET)),
    flag("v", Value, Same),
    flag("validating-webhook", Value, Same),
    flag("validating-webhook-certificate", Value, Same),
    flag("validating-webhook-key", Value, Same),
    flag("version", Bool, Same),
    flag("vmodule", Value, Ignored(LOGS)),
    flag("watch-ingress-without-class", Bool, Same),
    flag("watch-namespace", Value, Same),
    flag("watch-namespace-selector", Value, Same),
];

/// The row of `name`.
pub(crate) fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.binary_search_by(|f| f.name.cmp(name)).ok().map(|i| &FLAGS[i])
}

/// Ferry's boolean flags that take no value (`--name` sets them).
const FERRY_SWITCHES: [&str; 5] = [
    "watch-ingress-without-class",
    "ingress-class-by-name",
    "disable-catch-all",
    "enable-ssl-passthrough",
    "disable-sync-events",
];

/// One ingress-nginx flag taken out of the arguments, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IgnoredFlag {
    /// The argument as given (`--v=2`).
    pub(crate) argument: String,
    pub(crate) reason: &'static str,
}

/// The arguments Ferry's parser gets, and the ingress-nginx flags taken out of them.
pub(crate) fn translate(args: impl IntoIterator<Item = OsString>) -> (Vec<OsString>, Vec<IgnoredFlag>) {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let mut ignored = Vec::new();
    let mut rest: Vec<OsString> = args.collect();
    // `/nginx-ingress-controller` as the first argument (the image's entrypoint runs Ferry with
    // ingress-nginx's `args`): the controller itself.
    if rest.first().is_some_and(|a| a.to_str().is_some_and(is_nginx_program)) {
        rest.remove(0);
    }
    let mut iter = rest.into_iter().peekable();
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str().map(str::to_owned) else {
            out.push(arg);
            continue;
        };
        // Go's flag package takes `-name` as well as `--name`.
        let Some(body) = text.strip_prefix("--").or_else(|| text.strip_prefix('-').filter(|b| !b.is_empty()))
        else {
            out.push(arg);
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let Some(row) = find(name) else {
            out.push(arg);
            continue;
        };
        let is_bool = |v: &OsString| v.to_str().is_some_and(|v| matches!(v, "true" | "false"));
        let value = match (row.arity, inline) {
            (_, Some(v)) => Some(v),
            (Arity::Value, None) => iter.next().and_then(|v| v.into_string().ok()),
            // Ferry's own form `--update-status false` (Go wants `=` for booleans).
            (Arity::Bool, None) if row.treatment == Treatment::Same && iter.peek().is_some_and(is_bool) => {
                iter.next().and_then(|v| v.into_string().ok())
            }
            (Arity::Bool, None) => None,
        };
        let ferry = match row.treatment {
            Treatment::Ignored(reason) => {
                let argument = match &value {
                    Some(v) if row.arity == Arity::Value || text.contains('=') => format!("--{name}={v}"),
                    _ => format!("--{name}"),
                };
                ignored.push(IgnoredFlag { argument, reason });
                continue;
            }
            Treatment::Same => name,
            Treatment::Renamed(to) => to,
        };
        if FERRY_SWITCHES.contains(&ferry) {
            // `--name=false` leaves Ferry's switch off; `--name` and `--name=true` set it.
            if value.as_deref().is_none_or(|v| matches!(v, "true" | "1" | "t" | "T" | "TRUE" | "True")) {
                out.push(format!("--{ferry}").into());
            }
        } else if ferry == "version" {
            out.push("--version".into());
        } else {
            // Go's boolean literals, as Ferry's parser takes them.
            let value = value.map(|v| match (row.arity, v.as_str()) {
                (Arity::Bool, "1" | "t" | "T" | "TRUE" | "True") => "true".to_owned(),
                (Arity::Bool, "0" | "f" | "F" | "FALSE" | "False") => "false".to_owned(),
                _ => v,
            });
            match value {
                Some(v) => out.push(format!("--{ferry}={v}").into()),
                None if row.arity == Arity::Bool => out.push(format!("--{ferry}=true").into()),
                None => out.push(format!("--{ferry}").into()),
            }
        }
    }
    (out, ignored)
}

/// Whether `path` names ingress-nginx's controller program.
pub(crate) fn is_nginx_program(path: &str) -> bool {
    std::path::Path::new(path).file_name().is_some_and(|n| n == "nginx-ingress-controller")
}

/// The Markdown table of every ingress-nginx flag, as `docs/flags.md` carries it (generated
/// and checked by a test).
#[cfg(test)]
fn markdown_table() -> String {
    let mut out = String::from("| ingress-nginx flag | Ferry |\n|---|---|\n");
    for f in FLAGS {
        let what = match f.treatment {
            Treatment::Same => "applied, same meaning".to_owned(),
            Treatment::Renamed(to) => format!("applied, as `--{to}`"),
            Treatment::Ignored(why) => format!("ignored (reported at start-up): {why}"),
        };
        out.push_str(&format!("| `--{}` | {what} |\n", f.name));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> (Vec<String>, Vec<IgnoredFlag>) {
        let (out, ignored) = translate(list.iter().map(OsString::from));
        (out.into_iter().map(|a| a.into_string().unwrap()).collect(), ignored)
    }

    #[test]
    fn the_documented_table_is_this_table() {
        const BEGIN: &str = "<!-- BEGIN generated flags table -->\n";
        const END: &str = "<!-- END generated flags table -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/flags.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let start = doc.find(BEGIN).expect("no BEGIN marker in docs/flags.md");
        let end = start + doc[start..].find(END).expect("no END marker in docs/flags.md");
        let generated = format!("{}{BEGIN}{}{}", &doc[..start], markdown_table(), &doc[end..]);
        if std::env::var_os("FERRY_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        assert!(
            generated == doc,
            "docs/flags.md is out of date with the flag table; run \
             FERRY_BLESS=1 cargo test -p ingress-cli --bin ingress-controller nginx_flags"
        );
    }

    #[test]
    fn disable_sync_events_turns_every_event_off() {
        use clap::Parser;
        let events = |list: &[&str]| {
            let cli = crate::args::Cli::try_parse_from(args(list).0).unwrap();
            cli.run.k8s_config().emit_events
        };
        assert!(events(&["ferry"]));
        assert!(!events(&["ferry", "--disable-sync-events"]));
        assert!(!events(&["/nginx-ingress-controller", "--disable-sync-events=true"]));
        assert!(events(&["ferry", "--disable-sync-events=false"]));
    }

    #[test]
    fn sorted_and_unique_so_lookup_works() {
        assert!(FLAGS.windows(2).all(|w| w[0].name < w[1].name));
        assert!(find("configmap").is_some() && find("nope").is_none());
    }

    #[test]
    fn the_deploy_manifest_args_pass_with_the_webhook_applied() {
        let (out, ignored) = args(&[
            "/ingress-controller",
            "/nginx-ingress-controller",
            "--publish-service=ingress-nginx/ingress-nginx-controller",
            "--election-id=ingress-nginx-leader",
            "--controller-class=k8s.io/ingress-nginx",
            "--ingress-class=nginx",
            "--configmap=ingress-nginx/ingress-nginx-controller",
            "--validating-webhook=:8443",
            "--validating-webhook-certificate=/usr/local/certificates/cert",
            "--validating-webhook-key=/usr/local/certificates/key",
        ]);
        assert_eq!(
            out,
            [
                "/ingress-controller",
                "--publish-service=ingress-nginx/ingress-nginx-controller",
                "--election-id=ingress-nginx-leader",
                "--controller-class=k8s.io/ingress-nginx",
                "--ingress-class=nginx",
                "--configmap=ingress-nginx/ingress-nginx-controller",
                "--validating-webhook=:8443",
                "--validating-webhook-certificate=/usr/local/certificates/cert",
                "--validating-webhook-key=/usr/local/certificates/key",
            ]
        );
        assert!(ignored.is_empty(), "{ignored:?}");
    }

    #[test]
    fn forms_go_accepts_are_read() {
        let (out, ignored) = args(&[
            "ferry",
            "--vmodule",
            "x=2",
            "-logtostderr",
            "--healthz-port",
            "10254",
            "--watch-ingress-without-class=false",
            "--update-status",
            "--enable-metrics=false",
            "--manifests",
            "/tmp/x",
        ]);
        assert_eq!(out, ["ferry", "--admin-port=10254", "--update-status=true", "--manifests", "/tmp/x"]);
        let taken: Vec<&str> = ignored.iter().map(|i| i.argument.as_str()).collect();
        assert_eq!(taken, ["--vmodule=x=2", "--logtostderr", "--enable-metrics=false"]);
        let (out, _) = args(&["ferry", "--watch-ingress-without-class=true"]);
        assert_eq!(out, ["ferry", "--watch-ingress-without-class"]);
        let (out, _) = args(&["ferry", "--disable-sync-events", "--disable-sync-events=false"]);
        assert_eq!(out, ["ferry", "--disable-sync-events"]);
        let (out, _) = args(&["ferry", "--update-status", "false", "--access-log", "off"]);
        assert_eq!(out, ["ferry", "--update-status=false", "--access-log", "off"], "Ferry's own forms stay");
        let (out, _) = args(&["ferry", "--update-status=1", "--update-status=F"]);
        assert_eq!(out, ["ferry", "--update-status=true", "--update-status=false"], "Go's literals");
        assert!(is_nginx_program("/nginx-ingress-controller") && !is_nginx_program("/ingress-controller"));
    }
}
