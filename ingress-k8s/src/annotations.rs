//! ingress-nginx annotations → per-route policy, with a verdict for every annotation.
//!
//! [`read`] takes one Ingress's annotations and gives the [`RoutePolicy`] of its routes and one
//! [`AnnotationReport`] per annotation under the prefix: `applied`, `ignored` (known to
//! ingress-nginx, not applied here, with the reason), `rejected` (a bad value, with what was
//! expected; the default stays, as ingress-nginx keeps it for these annotations) or `unknown`
//! (not an ingress-nginx name: likely a typo). Every name comes from one table
//! ([`table::KNOWN`]); each family of annotations is read by its own small module.
//!
//! Fail closed: an access restriction (`auth-*`, `limit-*`, `satisfy`) that is not applied, or
//! whose value is rejected (a source range list too), closes the Ingress ([`RoutePolicy::closed`]):
//! its paths answer `503` rather than being served more openly than ingress-nginx would.

mod access;
mod auth;
mod backend;
mod balance;
mod canary;
mod client_auth;
mod cors;
mod external_auth;
mod headers;
mod limits;
mod proxy;
mod redirect;
mod response;
mod rewrite;
mod table;
mod upstream;
mod values;

use std::collections::BTreeMap;
use std::fmt;

use ingress_core::RoutePolicy;

/// ingress-nginx's default `--annotations-prefix`.
pub const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// What became of one annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Read and in force.
    Applied,
    /// Known to ingress-nginx, not applied by Ferry (the note says why, and what happens).
    Ignored,
    /// The value is not valid (the note says what was expected); the default is in force.
    Rejected,
    /// Not an ingress-nginx annotation: probably a typo.
    Unknown,
}

impl Verdict {
    /// Every verdict, in order.
    pub const ALL: [Verdict; 4] = [Verdict::Applied, Verdict::Ignored, Verdict::Rejected, Verdict::Unknown];

    /// The verdict's name, as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Applied => "applied",
            Verdict::Ignored => "ignored",
            Verdict::Rejected => "rejected",
            Verdict::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One annotation of one Ingress and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnnotationReport {
    /// The full annotation key, prefix included.
    pub key: String,
    /// Its value as written.
    pub value: String,
    /// What became of it.
    pub verdict: Verdict,
    /// What Ferry does (applied), why not (ignored), what was expected (rejected), or the
    /// closest known name (unknown).
    pub note: String,
    /// Whether this annotation closed the Ingress (an access restriction not applied).
    pub closes: bool,
}

impl AnnotationReport {
    /// The note, and what closing means when the annotation closes the Ingress.
    pub fn detail(&self) -> String {
        if self.closes {
            format!("{}; the Ingress's paths answer 503 until this is fixed (fail closed)", self.note)
        } else {
            self.note.clone()
        }
    }
}

impl fmt::Display for AnnotationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.verdict, self.detail())
    }
}

/// What one Ingress's annotations amount to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// The policy of the Ingress's routes.
    pub policy: RoutePolicy,
    /// The split, when the Ingress is a canary (`canary: "true"`).
    pub canary: Option<ingress_core::CanaryRule>,
    /// `default-backend`: the Service (of the Ingress's namespace) and port that take requests
    /// while a route's own backend has no ready endpoint.
    pub fallback: Option<(String, u16)>,
    /// `server-alias`: more names for the Ingress's hosts.
    pub aliases: Vec<String>,
    /// `from-to-www-redirect`.
    pub www_redirect: bool,
    /// `ssl-passthrough`, applied (the controller runs with `--enable-ssl-passthrough`).
    pub ssl_passthrough: bool,
    /// `auth-tls-*`: client certificates for the Ingress's hosts.
    pub client_auth: Option<ingress_core::ClientAuth>,
    /// `service-upstream`: the Ingress's backends are their Services' cluster IPs; `None`
    /// follows the ConfigMap's `service-upstream`.
    pub service_upstream: Option<bool>,
    /// The ConfigMaps the annotations name (`custom-headers`, `auth-proxy-set-headers`), by
    /// namespace and name: the
    /// controller watches these.
    pub config_maps: Vec<crate::objects::Key>,
    /// The Secrets the annotations name (`auth-secret`), by namespace and name: the controller
    /// watches these.
    pub secrets: Vec<crate::objects::Key>,
    /// One report per annotation under the prefix, sorted by key.
    pub reports: Vec<AnnotationReport>,
}

/// A family module's answer for one annotation it reads: `Ok` with what it does, or `Err`
/// with what was expected.
type Outcome = Result<String, String>;

/// The same answer, for families where a valid value may still be one Ferry does not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    /// In force; what it does.
    Applied(String),
    /// A valid value Ferry does not act on; why, and what happens instead.
    Ignored(String),
    /// Not valid; what was expected.
    Rejected(String),
}

impl From<Outcome> for Read {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Ok(what) => Read::Applied(what),
            Err(expected) => Read::Rejected(expected),
        }
    }
}

fn reads(outcomes: BTreeMap<&str, Outcome>) -> impl Iterator<Item = (&str, Read)> {
    outcomes.into_iter().map(|(name, outcome)| (name, outcome.into()))
}

/// Finds a ConfigMap's data by namespace and name.
pub type ConfigMapLookup<'a> = dyn Fn(&str, &str) -> Option<BTreeMap<String, String>> + 'a;

/// What reading an Ingress's annotations may look up besides the Ingress itself.
pub struct Lookup<'a> {
    /// The first port of a Service of the Ingress's namespace, by name (`default-backend`).
    pub service_port: &'a dyn Fn(&str) -> Option<u16>,
    /// A ConfigMap's data, by namespace and name (`custom-headers`).
    pub config_map: &'a ConfigMapLookup<'a>,
    /// The controller ConfigMap's `global-allowed-response-headers` (`custom-headers`).
    pub allowed_response_headers: &'a [String],
    /// The Ingress's namespace (`auth-secret` names a Secret of it).
    pub namespace: &'a str,
    /// A Secret's data, by namespace and name (`auth-secret`).
    pub secret: &'a SecretLookup<'a>,
    /// The controller passes TLS through (`--enable-ssl-passthrough`): `ssl-passthrough`
    /// applies.
    pub ssl_passthrough: bool,
}

pub use auth::SecretLookup;

impl Lookup<'_> {
    /// A lookup that finds nothing.
    pub const NOTHING: Lookup<'static> = Lookup {
        service_port: &|_| None,
        config_map: &|_, _| None,
        allowed_response_headers: &[],
        namespace: "",
        secret: &|_, _| None,
        ssl_passthrough: false,
    };
}

impl fmt::Debug for Lookup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lookup").field("allowed_response_headers", &self.allowed_response_headers).finish()
    }
}

/// Reads the annotations of one Ingress (all of them; those without `prefix/` are not ours
/// and are skipped), finding no other object (so `default-backend` and `custom-headers` find
/// nothing).
pub fn read<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    prefix: &str,
) -> Annotations {
    read_with(annotations, prefix, &Lookup::NOTHING)
}

/// [`read`], with what `lookup` finds.
pub fn read_with<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    prefix: &str,
    lookup: &Lookup<'_>,
) -> Annotations {
    let service_port = lookup.service_port;
    let ours: BTreeMap<&str, &str> = annotations
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.strip_prefix('/')?, v.as_str())))
        .collect();
    let mut policy = RoutePolicy::default();
    let mut outcomes: BTreeMap<&str, Read> = reads(proxy::read(&ours, &mut policy)).collect();
    outcomes.extend(reads(redirect::read(&ours, &mut policy)));
    outcomes.extend(reads(rewrite::read(&ours, &mut policy)));
    outcomes.extend(upstream::read(&ours, &mut policy));
    let mut fallback = None;
    if let Some((&name, &value)) = ours.get_key_value("default-backend") {
        let read = upstream::default_backend(value, service_port);
        if let Ok((service, port)) = &read {
            fallback = Some((service.clone(), *port));
        }
        outcomes.insert(
            name,
            match read {
                Ok((service, port)) => Read::Applied(format!(
                    "requests go to service {service} port {port} while the route's own has no ready endpoint"
                )),
                Err(e) => Read::Rejected(e),
            },
        );
    }
    outcomes.extend(reads(cors::read(&ours, &mut policy)));
    outcomes.extend(balance::read(&ours, &mut policy));
    outcomes.extend(response::read(&ours, &mut policy));
    let (name_outcomes, names) = redirect::names(&ours);
    outcomes.extend(name_outcomes);
    // Annotations whose rejected value denies the Ingress in ingress-nginx (`503`).
    let mut denied = Vec::new();
    for (name, read) in access::read(&ours, &mut policy) {
        if matches!(read, Read::Rejected(_)) {
            denied.push(name);
        }
        outcomes.insert(name, read);
    }
    for (name, read) in limits::read(&ours, &mut policy) {
        if matches!(read, Read::Rejected(_)) && limits::denies(name) {
            denied.push(name);
        }
        outcomes.insert(name, read);
    }
    let (auth_outcomes, secret) = auth::read(&ours, lookup.namespace, lookup.secret, &mut policy);
    for (name, read) in auth_outcomes {
        if matches!(read, Read::Rejected(_)) {
            denied.push(name);
        }
        outcomes.insert(name, read);
    }
    let certs = client_auth::read(&ours, lookup.namespace, lookup.secret);
    denied.extend(certs.denied);
    outcomes.extend(certs.outcomes);
    let backend = backend::read(&ours, lookup.namespace, lookup.secret, &mut policy);
    denied.extend(backend.denied);
    outcomes.extend(backend.outcomes);
    let mut config_maps = Vec::new();
    let external = external_auth::read(&ours, lookup.namespace, lookup.config_map, &mut policy);
    denied.extend(external.denied);
    outcomes.extend(external.outcomes);
    config_maps.extend(external.config_map);
    if let Some((&name, &value)) = ours.get_key_value("custom-headers") {
        if let Ok((ns, cm)) = headers::reference(value) {
            config_maps.push((ns.into(), cm.into()));
        }
        let read = headers::read(value, lookup.config_map, lookup.allowed_response_headers, &mut policy);
        if read.is_err() {
            denied.push(name);
        }
        outcomes.insert(name, read.into());
    }
    let mut service_upstream = None;
    if let Some((&name, &value)) = ours.get_key_value("service-upstream") {
        let read = match values::go_bool(value.trim()) {
            Ok(on) => {
                service_upstream = Some(on);
                Read::Applied(if on {
                    "requests go to the Service's cluster IP (its endpoints when it has none)".to_owned()
                } else {
                    "requests go to the Service's endpoints".to_owned()
                })
            }
            Err(e) => Read::Rejected(e),
        };
        outcomes.insert(name, read);
    }
    let mut ssl_passthrough = false;
    if let Some((&name, &value)) = ours.get_key_value("ssl-passthrough") {
        let read = match values::go_bool(value.trim()) {
            Ok(true) if lookup.ssl_passthrough => {
                ssl_passthrough = true;
                Read::Applied(PASSTHROUGH_ON.to_owned())
            }
            Ok(true) => Read::Ignored(PASSTHROUGH_OFF.to_owned()),
            Ok(false) => Read::Applied("TLS is terminated here".to_owned()),
            Err(e) => Read::Rejected(e),
        };
        outcomes.insert(name, read);
    }
    let (canary_outcomes, canary) = canary::read(&ours);
    outcomes.extend(reads(canary_outcomes));
    let mut reports = Vec::new();
    let mut closed = Vec::new();
    for (&name, &value) in &ours {
        let key = format!("{prefix}/{name}");
        let found = table::find(name).map(|k| k.support);
        let inherited =
            canary.is_some() && found.is_some() && !INHERITED_BY_CANARY.iter().any(|p| name.starts_with(p));
        let (verdict, note, closes) = match found {
            // ingress-nginx ignores a canary's other annotations: its traffic gets the main
            // route's settings (access restrictions included).
            _ if inherited => (Verdict::Ignored, CANARY_INHERITS.to_owned(), false),
            None => (Verdict::Unknown, unknown_note(name), false),
            Some(table::Support::Ignored(why)) => (Verdict::Ignored, why.to_owned(), false),
            Some(table::Support::Restricts(why)) => (Verdict::Ignored, why.to_owned(), true),
            Some(table::Support::Applied) => match outcomes.remove(name) {
                Some(Read::Applied(what)) => (Verdict::Applied, what, false),
                Some(Read::Ignored(why)) => (Verdict::Ignored, why, false),
                Some(Read::Rejected(expected)) if denied.contains(&name) => {
                    (Verdict::Rejected, format!("value `{value}`: {expected}"), true)
                }
                Some(Read::Rejected(expected)) => {
                    (Verdict::Rejected, format!("value `{value}`: {expected}; the default stays"), false)
                }
                // A modifier whose main annotation is absent (nothing to modify).
                None => (Verdict::Applied, "no effect on its own".to_owned(), false),
            },
        };
        if closes {
            closed.push(key.clone());
        }
        reports.push(AnnotationReport { key, value: value.to_owned(), verdict, note, closes });
    }
    if !closed.is_empty() {
        policy.closed = Some(format!("access restriction not applied or denied: {}", closed.join(", ")));
    }
    Annotations {
        policy,
        canary,
        fallback,
        aliases: names.aliases,
        www_redirect: names.www_redirect,
        ssl_passthrough,
        service_upstream,
        config_maps,
        secrets: secret.into_iter().chain(backend.secret).chain(certs.secret).collect(),
        client_auth: certs.auth,
        reports,
    }
}

const PASSTHROUGH_DOC: &str = "with `--enable-ssl-passthrough`, TLS connections for the Ingress's hosts (by SNI; \
     wildcard hosts and `server-alias` names too, which ingress-nginx never matches) are passed unterminated to the \
     ready endpoints of the host's `/` path (ingress-nginx dials the Service's cluster IP); a host without a `/` path \
     is reported and terminated. Without the flag: ignored, as in ingress-nginx";
const PASSTHROUGH_ON: &str = "TLS connections whose server name (SNI) is one of the Ingress's hosts are passed, \
     unterminated, to the backend of the host's `/` path; HTTP on the plain port is routed as usual";
const PASSTHROUGH_OFF: &str = "the controller runs without `--enable-ssl-passthrough`: TLS is terminated here, as ingress-nginx does then";

const SERVICE_UPSTREAM_DOC: &str = "`true`: requests go to the Service's cluster IP (one endpoint: no balancing, \
     affinity or retries across pods), or to its endpoints when it has none (headless)";

/// Annotations a canary Ingress keeps (its own split); the others follow the main Ingress,
/// balancing and affinity included (a canary's sessions stick by the main Ingress's cookie, as
/// ingress-nginx's default `affinity-canary-behavior: sticky` copies it).
const INHERITED_BY_CANARY: [&str; 2] = ["canary", "affinity-canary-behavior"];

const CANARY_INHERITS: &str =
    "a canary Ingress's requests get the main Ingress's settings (as in ingress-nginx)";

/// How many Ingresses have at least one annotation of each verdict, in [`Verdict::ALL`] order:
/// the `ferry_ingress_annotations` metric, kept up to date from the Ingresses (each given by
/// its reports) that went and came, so a table costs what changed, not a pass over every
/// Ingress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictCounts([u64; 4]);

impl VerdictCounts {
    /// Takes out the Ingresses that `went` and counts those that `came`.
    pub fn update<'a>(
        &mut self,
        went: impl IntoIterator<Item = &'a [AnnotationReport]>,
        came: impl IntoIterator<Item = &'a [AnnotationReport]>,
    ) {
        let held =
            |reports: &[AnnotationReport]| Verdict::ALL.map(|v| reports.iter().any(|r| r.verdict == v));
        for reports in went {
            for (n, held) in self.0.iter_mut().zip(held(reports)) {
                *n = n.saturating_sub(u64::from(held));
            }
        }
        for reports in came {
            for (n, held) in self.0.iter_mut().zip(held(reports)) {
                *n += u64::from(held);
            }
        }
    }

    /// Each verdict and its count.
    pub fn counts(&self) -> [(Verdict, u64); 4] {
        std::array::from_fn(|i| (Verdict::ALL[i], self.0[i]))
    }
}

/// The note of an unknown name: the known name it is closest to, if one is close.
fn unknown_note(name: &str) -> String {
    match closest_name(name, table::KNOWN.iter().map(|k| k.name)) {
        Some(known) => format!("not an ingress-nginx annotation (did you mean `{known}`?)"),
        None => "not an ingress-nginx annotation".to_owned(),
    }
}

/// The name of `known` closest to `name` (a likely typo of it), if one is within an edit
/// distance of 3: the hint for unknown annotation names and ConfigMap keys.
pub fn closest_name<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known.into_iter().map(|k| (edit_distance(name, k), k)).min().filter(|&(d, _)| d <= 3).map(|(_, k)| k)
}

/// Levenshtein distance, for typo hints on short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The Markdown table of every annotation and what Ferry does with it, as
/// `docs/annotations.md` carries it between its generated-table markers.
pub fn markdown_table() -> String {
    let mut out = String::from("| Annotation | ingress-nginx group | Ferry |\n|---|---|---|\n");
    for k in table::KNOWN {
        let status = match k.support {
            table::Support::Applied => {
                let doc = proxy::doc(k.name)
                    .or_else(|| redirect::doc(k.name))
                    .or_else(|| rewrite::doc(k.name))
                    .or_else(|| upstream::doc(k.name))
                    .or_else(|| cors::doc(k.name))
                    .or_else(|| canary::doc(k.name))
                    .or_else(|| response::doc(k.name))
                    .or_else(|| access::doc(k.name))
                    .or_else(|| limits::doc(k.name))
                    .or_else(|| auth::doc(k.name))
                    .or_else(|| external_auth::doc(k.name))
                    .or_else(|| balance::doc(k.name))
                    .or_else(|| backend::doc(k.name))
                    .or_else(|| client_auth::doc(k.name))
                    .or_else(|| (k.name == "custom-headers").then_some(headers::DOC))
                    .or_else(|| (k.name == "default-backend").then_some(upstream::DEFAULT_BACKEND_DOC))
                    .or_else(|| (k.name == "service-upstream").then_some(SERVICE_UPSTREAM_DOC))
                    .or_else(|| (k.name == "ssl-passthrough").then_some(PASSTHROUGH_DOC));
                format!("applied{}", doc.map(|d| format!(": {d}")).unwrap_or_default())
            }
            table::Support::Ignored(why) => format!("ignored: {why}"),
            table::Support::Restricts(why) => format!("**fail closed** (503): {why}"),
        };
        out.push_str(&format!("| `{}` | {} | {status} |\n", k.name, k.group));
    }
    out
}

/// Runs one family's `read` over `pairs` (names without the prefix): the policy it made and
/// its outcomes. For the families' tests.
#[cfg(test)]
fn read_family<T>(
    pairs: &[(&'static str, &'static str)],
    read: impl FnOnce(&BTreeMap<&'static str, &'static str>, &mut RoutePolicy) -> BTreeMap<&'static str, T>,
) -> (RoutePolicy, BTreeMap<&'static str, T>) {
    let ours: BTreeMap<&str, &str> = pairs.iter().copied().collect();
    let mut policy = RoutePolicy::default();
    let outcomes = read(&ours, &mut policy);
    (policy, outcomes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (format!("{DEFAULT_PREFIX}/{k}"), (*v).to_owned())).collect()
    }

    fn verdicts(read: &Annotations) -> Vec<(&str, Verdict)> {
        read.reports.iter().map(|r| (r.key.rsplit('/').next().unwrap(), r.verdict)).collect()
    }

    #[test]
    fn every_annotation_gets_one_verdict() {
        let mut input = annotations(&[
            ("proxy-read-timeout", "600"),
            ("proxy-send-timeout", "60s"),
            ("configuration-snippet", "more_set_headers \"x: y\";"),
            ("proxy-bdy-size", "8m"),
        ]);
        input.insert("kubernetes.io/ingress.class".into(), "ferry".into());
        input.insert("example.com/other".into(), "x".into());
        let read = read(&input, DEFAULT_PREFIX);
        assert_eq!(
            verdicts(&read),
            [
                ("configuration-snippet", Verdict::Ignored),
                ("proxy-bdy-size", Verdict::Unknown),
                ("proxy-read-timeout", Verdict::Applied),
                ("proxy-send-timeout", Verdict::Rejected),
            ]
        );
        assert!(read.reports[1].note.contains("did you mean `proxy-body-size`"), "{}", read.reports[1].note);
        assert!(read.reports[3].note.contains("no unit"), "{}", read.reports[3].note);
        assert_eq!(read.policy.read_timeout, Some(std::time::Duration::from_secs(600)));
        assert_eq!(read.policy.send_timeout, None, "a rejected value leaves the default");
        assert!(read.policy.closed.is_none());
    }

    #[test]
    fn access_restrictions_not_applied_close_the_ingress() {
        let read = read(&annotations(&[("limit-rate-after", "1m"), ("limit-rate", "100")]), DEFAULT_PREFIX);
        assert!(read.reports.iter().all(|r| r.closes && r.verdict == Verdict::Ignored));
        let closed = read.policy.closed.unwrap();
        assert!(closed.contains("limit-rate-after") && closed.contains("limit-rate,"), "{closed}");
        // A client certificate Secret that cannot be used (here, of another namespace) denies the
        // whole family.
        let certs = super::read(
            &annotations(&[("auth-tls-secret", "app/ca"), ("auth-tls-verify-depth", "2")]),
            DEFAULT_PREFIX,
        );
        assert!(
            certs.reports.iter().all(|r| r.closes && r.verdict == Verdict::Rejected),
            "{:?}",
            certs.reports
        );
        assert!(
            certs.reports[0].note.starts_with("value `app/ca`: a Secret of another namespace is refused"),
            "{}",
            certs.reports[0].note
        );
        let bad = super::read(&annotations(&[("auth-url", "auth.example.com/check")]), DEFAULT_PREFIX);
        assert_eq!((bad.reports[0].verdict, bad.reports[0].closes), (Verdict::Rejected, true));
        assert!(bad.policy.closed.is_some() && bad.policy.external_auth.is_none());
        assert!(read.reports[0].to_string().contains("503"));
    }

    #[test]
    fn an_applied_restriction_with_a_bad_value_closes_the_ingress() {
        let ok = read(&annotations(&[("whitelist-source-range", "10.0.0.0/8")]), DEFAULT_PREFIX);
        assert!(ok.policy.closed.is_none() && ok.policy.allow_ranges.is_some());
        assert_eq!(ok.reports[0].verdict, Verdict::Applied);
        let bad = read(&annotations(&[("whitelist-source-range", "10.0.0.0/8,")]), DEFAULT_PREFIX);
        assert_eq!((bad.reports[0].verdict, bad.reports[0].closes), (Verdict::Rejected, true));
        assert!(bad.policy.closed.unwrap().contains("whitelist-source-range"));
        assert!(bad.policy.allow_ranges.is_none());
    }

    #[test]
    fn another_prefix_is_read_and_the_default_one_is_then_not_ours() {
        let mut input = annotations(&[("proxy-read-timeout", "5")]);
        input.insert("custom.io/proxy-read-timeout".into(), "7".into());
        let read = read(&input, "custom.io");
        assert_eq!(read.reports.len(), 1);
        assert_eq!(read.policy.read_timeout, Some(std::time::Duration::from_secs(7)));
    }

    #[test]
    fn ingresses_are_counted_once_per_verdict() {
        let a =
            read(&annotations(&[("proxy-read-timeout", "1"), ("proxy-send-timeout", "2")]), DEFAULT_PREFIX);
        let b = read(&annotations(&[("proxy-read-timeout", "x"), ("nope", "1")]), DEFAULT_PREFIX);
        let mut counts = VerdictCounts::default();
        counts.update([], [a.reports.as_slice(), b.reports.as_slice(), &[]]);
        assert_eq!(
            counts.counts(),
            [(Verdict::Applied, 1), (Verdict::Ignored, 0), (Verdict::Rejected, 1), (Verdict::Unknown, 1)]
        );
        // `b` goes: only what it held is taken out.
        counts.update([b.reports.as_slice()], []);
        assert_eq!(
            counts.counts(),
            [(Verdict::Applied, 1), (Verdict::Ignored, 0), (Verdict::Rejected, 0), (Verdict::Unknown, 0)]
        );
    }

    #[test]
    fn the_table_renders_every_row() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), table::KNOWN.len() + 2);
        assert!(table.contains("| `configuration-snippet` | snippets | ignored: configuration snippets"));
    }
}
