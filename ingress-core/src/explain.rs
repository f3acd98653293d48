//! Explain: a lookup that also says which candidates it considered and why the winner won.

use std::fmt;

use crate::host::HostBuf;
use crate::path;
use crate::table::{CompiledRoute, HostBlock};
use crate::{BackendRef, Field, HostPattern, Origin, PathType, RouteTable, TlsEntry};

/// A host pattern that matched the request's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCandidate {
    /// The pattern.
    pub pattern: HostPattern,
    /// Whether this host's paths were the ones considered (the most specific match).
    pub chosen: bool,
}

/// What became of one path rule of the chosen host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This rule won.
    Won,
    /// It matched, but a rule earlier in precedence order won.
    Lost(String),
    /// It does not match the request path.
    NoMatch,
    /// It was left out at build time: another Ingress (or an earlier rule) claimed the same
    /// host, path and path type.
    Shadowed(String),
}

/// One path rule considered for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCandidate {
    /// The rule's path (a `Prefix` path without its trailing slash).
    pub path: String,
    /// The rule's path type.
    pub path_type: PathType,
    /// The Ingress that declared it.
    pub origin: Origin,
    /// Where in that Ingress.
    pub field: Field,
    /// Its backend.
    pub backend: BackendRef,
    /// What became of it.
    pub verdict: Verdict,
}

/// How the request was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A path rule matched.
    Path {
        /// The Ingress of the winning rule.
        origin: Origin,
        /// Where the winning rule is written.
        field: Field,
    },
    /// An Ingress's `spec.defaultBackend` took it.
    IngressDefault {
        /// That Ingress.
        origin: Origin,
    },
    /// The controller-wide default backend took it.
    ControllerDefault,
    /// Nothing matched: the built-in 404.
    NoRoute,
}

/// The decision trace of one request, as returned by [`RouteTable::explain`].
///
/// Its `Display` form is the text the CLI's `explain` command prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The host as matched (lower case, without port or trailing dot).
    pub host: String,
    /// The path as matched (without query string).
    pub path: String,
    /// The host patterns that match, most specific first; only the first was used.
    pub hosts: Vec<HostCandidate>,
    /// The chosen host's path rules in precedence order, plus rules shadowed at build time.
    pub paths: Vec<PathCandidate>,
    /// How it was decided.
    pub decision: Decision,
    /// Where the request goes; `None` for the built-in 404.
    pub backend: Option<BackendRef>,
    /// Why, in one sentence.
    pub reason: String,
    /// The certificate a TLS handshake for this host gets.
    pub certificate: Option<TlsEntry>,
}

impl RouteTable {
    /// Like [`lookup`](RouteTable::lookup), but returns the whole decision trace. Slower and
    /// allocating: for people and tools, not for the request path.
    ///
    /// # Examples
    ///
    /// ```
    /// use ingress_core::{BackendRef, Decision, EndpointStore, HostRule, Ingress, Origin, PathRule, TableBuilder, Verdict};
    ///
    /// let mut b = TableBuilder::new();
    /// b.ingress(Ingress::new(Origin::new("default", "site")).rule(HostRule::host("example.com")
    ///     .path(PathRule::prefix("/", BackendRef::new("default", "web", 80)))
    ///     .path(PathRule::exact("/login", BackendRef::new("default", "auth", 80)))));
    /// let table = b.build(&mut EndpointStore::new()).table;
    ///
    /// let e = table.explain("example.com", "/login");
    /// assert_eq!(&*e.backend.unwrap().service, "auth");
    /// assert_eq!(e.paths[0].verdict, Verdict::Won);
    /// assert!(matches!(e.paths[1].verdict, Verdict::Lost(_)));
    /// assert!(matches!(e.decision, Decision::Path { .. }));
    /// ```
    pub fn explain(&self, host: &str, path: &str) -> Explanation {
        let mut buf: HostBuf = [0; 254];
        let norm_host = crate::normalize_host(host, &mut buf).unwrap_or(host).to_owned();
        let path = path::strip_query(path).to_owned();
        let found = self.find_host(host);
        let chosen = found.map(|(id, _)| id);

        let mut hosts: Vec<HostCandidate> = self
            .index
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((i, pattern(h.as_deref()?))))
            .filter(|(_, p)| p.matches(&norm_host))
            .map(|(i, pattern)| HostCandidate { pattern, chosen: u32::try_from(i).ok() == chosen })
            .collect();
        hosts.sort_by_key(|h| h.pattern.specificity());

        let mut paths = Vec::new();
        let mut winner: Option<(&HostBlock, &CompiledRoute)> = None;
        if let Some((_, block)) = found {
            for r in &block.routes {
                let verdict = if !path::matches(r.kind, block.bytes(r.path), path.as_bytes(), &block.regexes)
                {
                    Verdict::NoMatch
                } else if let Some((_, w)) = winner {
                    Verdict::Lost(lost_because(block, w, r))
                } else {
                    winner = Some((block, r));
                    Verdict::Won
                };
                paths.push(candidate(block, r, verdict));
            }
            for s in &block.shadowed {
                let Some(w) = block.routes.get(s.winner as usize) else { continue };
                let why = format!(
                    "same host, path and path type as {} in {}, which takes precedence",
                    w.field(),
                    block.members[w.origin as usize].origin
                );
                paths.push(candidate(block, &s.route, Verdict::Shadowed(why)));
            }
        }

        let route = self.lookup(host, &path);
        let (decision, reason) = match (winner, route.map(|r| r.matched_by)) {
            (Some((block, w)), _) => (
                Decision::Path { origin: block.members[w.origin as usize].origin.clone(), field: w.field() },
                if w.kind.is_regex_host() {
                    format!(
                        "regex `^{}` (case-insensitive) is the first to match `{path}` on this regex host \
                         (use-regex/rewrite-target: every path of the host is a regex, longest first)",
                        block.text(w.path)
                    )
                } else {
                    format!("{} path `{}` is the longest match for `{path}`", w.path_type, block.text(w.path))
                },
            ),
            (None, Some(crate::MatchedBy::IngressDefault { origin })) => (
                Decision::IngressDefault { origin: origin.clone() },
                format!("no path matched; the default backend of ingress {origin} applies"),
            ),
            (None, Some(_)) => (
                Decision::ControllerDefault,
                "no rule matched; the controller's default backend applies".to_owned(),
            ),
            (None, None) => (
                Decision::NoRoute,
                "no rule matched and there is no default backend: built-in 404".to_owned(),
            ),
        };
        Explanation {
            host: norm_host,
            path,
            hosts,
            paths,
            decision,
            backend: route.map(|r| r.backend.key().clone()),
            reason,
            certificate: self.tls.certificate_for(Some(host)).cloned(),
        }
    }
}

/// A host block's pattern (allocates; for `explain`).
fn pattern(block: &HostBlock) -> HostPattern {
    let name = block.name().to_owned();
    match block.kind {
        0 => HostPattern::Exact(name),
        1 => HostPattern::Wildcard(name),
        _ => HostPattern::Any,
    }
}

fn candidate(block: &HostBlock, r: &CompiledRoute, verdict: Verdict) -> PathCandidate {
    PathCandidate {
        path: block.text(r.path).to_owned(),
        path_type: r.path_type,
        origin: block.members[r.origin as usize].origin.clone(),
        field: r.field(),
        backend: block.backends[r.backend as usize].key().clone(),
        verdict,
    }
}

/// Why `loser` (which matched) lost to `winner`, in the terms of the precedence rules.
fn lost_because(block: &HostBlock, winner: &CompiledRoute, loser: &CompiledRoute) -> String {
    if winner.kind.is_regex_host() {
        format!("the regex `{}` comes first (longer) and matched", block.text(winner.path))
    } else if winner.path.len > loser.path.len {
        format!("shorter than the winning path `{}`", block.text(winner.path))
    } else if winner.kind != loser.kind {
        format!("{} loses to {} at equal length", loser.path_type, winner.path_type)
    } else {
        format!("ingress {} is older", block.members[winner.origin as usize].origin)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "request: host `{}` path `{}`", self.host, self.path)?;
        if self.hosts.is_empty() {
            writeln!(f, "hosts:   no host rule matches")?;
        }
        for h in &self.hosts {
            let mark = if h.chosen { "chosen" } else { "not used (a more specific host matched)" };
            writeln!(f, "host:    {:<30} {mark}", h.pattern.to_string())?;
        }
        for p in &self.paths {
            let verdict = match &p.verdict {
                Verdict::Won => "WON".to_owned(),
                Verdict::Lost(why) => format!("lost: {why}"),
                Verdict::NoMatch => "no match".to_owned(),
                Verdict::Shadowed(why) => format!("rejected at build: {why}"),
            };
            writeln!(
                f,
                "path:    {:<22} {:<22} → {:<28} from {} {}: {verdict}",
                p.path,
                p.path_type.to_string(),
                p.backend.to_string(),
                p.origin,
                p.field
            )?;
        }
        match &self.backend {
            Some(b) => writeln!(f, "backend: {b}")?,
            None => writeln!(f, "backend: none (404 default backend)")?,
        }
        writeln!(f, "why:     {}", self.reason)?;
        match &self.certificate {
            Some(c) => match &c.origin {
                Some(o) => write!(f, "tls:     {} (for {}, from ingress {o})", c.certificate, c.host),
                None => write!(f, "tls:     {} (default certificate)", c.certificate),
            },
            None => write!(f, "tls:     no certificate (the proxy's self-signed one)"),
        }
    }
}
