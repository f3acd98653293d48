//! Building one host's block from the Ingresses that have a rule for it: the conflicts between
//! them (which path wins, whose default backend, aliases, passthrough, canaries) are all
//! settled here, so a change rebuilds only the blocks of the hosts it touches.

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use super::{Services, index, resolve};
use crate::path::{self, MatchKind};
use crate::table::{
    Aliases, CompiledCanary, CompiledRoute, HostBlock, MAX_TRAILING, Member, Shadowed, Span, Target, push_key,
};
use crate::{
    Backend, BackendRef, EndpointStore, Field, HostPattern, Ingress, Origin, PathType, Reason, Rejection,
};

/// The regexes compiled so far, by pattern: a pattern many hosts use is compiled once, and
/// kept from one build to the next.
pub(super) type Regexes = HashMap<String, regex::bytes::Regex>;

/// A path rule accepted so far. Its path borrows the input (compiling a path only trims it), so
/// accepting a rule allocates nothing.
struct PendingRoute<'a> {
    /// The path as matched outside regex mode (a `Prefix` path without its trailing slash).
    path: &'a str,
    /// The path as written: the regex in regex mode.
    written: &'a str,
    /// Its Ingress asks for regex mode on its hosts.
    regex: bool,
    canary: Option<u32>,
    kind: MatchKind,
    path_type: PathType,
    backend: u32,
    /// Index in the block's members, which are in age order: comparing indices compares ages.
    origin: u32,
    rule: u32,
    index: u32,
}

impl PendingRoute<'_> {
    fn field(&self) -> Field {
        Field::Path { rule: self.rule, path: self.index }
    }
}

/// The order of routes within a host, and so the whole of path precedence: the longest path
/// first, `Exact` before `Prefix` at equal length; then, among rules claiming the same path and
/// kind, the older Ingress (origin indices are in age order), then the order written. The path
/// text only groups equal paths together: two different paths of equal length never both match
/// one request.
fn precedence(a: &PendingRoute<'_>, b: &PendingRoute<'_>) -> Ordering {
    fn key<'a>(r: &PendingRoute<'a>) -> (Reverse<usize>, MatchKind, &'a str, u32, u32, u32) {
        (Reverse(r.path.len()), r.kind, r.path, r.origin, r.rule, r.index)
    }
    key(a).cmp(&key(b))
}

/// The order of routes on a regex host, as ingress-nginx writes its locations: the longest
/// path as written first; at equal length the older Ingress, then the order written (nginx
/// then takes the first regex that matches).
fn regex_order(a: &PendingRoute<'_>, b: &PendingRoute<'_>) -> Ordering {
    fn key(r: &PendingRoute<'_>) -> (Reverse<usize>, u32, u32, u32) {
        (Reverse(r.written.len()), r.origin, r.rule, r.index)
    }
    key(a).cmp(&key(b))
}

/// Whether `b` claims what `a` already claimed: same host (implied), same path, same kind; on
/// a regex host, the same path as written.
fn same_claim(a: &PendingRoute<'_>, b: &PendingRoute<'_>, regex_host: bool) -> bool {
    if regex_host { a.written == b.written } else { a.kind == b.kind && a.path == b.path }
}

/// The block being built.
struct Block<'a, 'e> {
    pattern: &'a HostPattern,
    services: &'a Services,
    endpoints: &'e mut EndpointStore,
    backends: Vec<Backend>,
    members: Vec<Member>,
    routes: Vec<PendingRoute<'a>>,
    canaries: Vec<CompiledCanary>,
    default: Option<Target>,
    tls: bool,
    aliases: Option<(u32, &'a [String])>,
    www_redirect: bool,
    passthrough: Option<u32>,
    client_auth: Option<Arc<crate::ClientAuth>>,
    declared: Option<(u32, u32)>,
    rejected: Vec<Rejection>,
}

/// Builds the block of host `pattern` from the Ingresses with a rule for it, `mains` and
/// `canaries` each oldest first. Rejections that concern an Ingress as a whole (its default
/// or fallback backend, hosts that do not parse, TLS) are not this block's: see
/// `build::ingress`.
pub(super) fn build(
    pattern: &HostPattern,
    mains: &[&Ingress],
    canaries: &[&Ingress],
    services: &Services,
    endpoints: &mut EndpointStore,
    regexes: &mut Regexes,
) -> HostBlock {
    let mut b = Block {
        pattern,
        services,
        endpoints,
        backends: Vec::new(),
        members: Vec::with_capacity(mains.len() + canaries.len()),
        routes: Vec::new(),
        canaries: Vec::new(),
        default: None,
        tls: false,
        aliases: None,
        www_redirect: false,
        passthrough: None,
        client_auth: None,
        declared: None,
        rejected: Vec::new(),
    };
    for ing in mains {
        b.add_main(ing);
    }
    for ing in canaries {
        b.add_canary(ing);
    }
    b.finish(regexes, !mains.is_empty())
}

/// Whether rule `host` (as written) is host `pattern`.
fn is_host(host: Option<&str>, pattern: &HostPattern) -> bool {
    HostPattern::parse(host).is_ok_and(|p| p == *pattern)
}

impl<'a> Block<'a, '_> {
    fn backend(&mut self, key: &BackendRef) -> u32 {
        if let Some(i) = self.backends.iter().position(|b| *b.key == *key) {
            return index(i);
        }
        let (key, endpoints) = self.endpoints.slot(key);
        self.backends.push(Backend { key, endpoints });
        index(self.backends.len() - 1)
    }

    /// The backend index for a reference as written, resolving named ports.
    fn resolved_backend(&mut self, backend: &BackendRef) -> Result<u32, Reason> {
        Ok(match resolve(backend, self.services)? {
            None => self.backend(backend),
            Some(resolved) => self.backend(&resolved),
        })
    }

    fn reject(&mut self, origin: &Origin, field: Field, reason: Reason) {
        self.rejected.push(Rejection { origin: origin.clone(), field, reason });
    }

    fn add_origin(&mut self, ing: &Ingress, fallback: Option<u32>) -> u32 {
        self.members.push(Member { origin: ing.origin.clone(), policy: Arc::clone(&ing.policy), fallback });
        index(self.members.len() - 1)
    }

    fn add_main(&mut self, ing: &'a Ingress) {
        // A fallback or default backend that does not resolve is the Ingress's rejection.
        let fallback = ing.fallback.as_ref().and_then(|b| self.resolved_backend(b).ok());
        let origin = self.add_origin(ing, fallback);
        let default = ing
            .default_backend
            .as_ref()
            .and_then(|b| self.resolved_backend(b).ok())
            .map(|backend| Target { backend, origin });
        // An Ingress names few Services, many times: compare with the ones it already named.
        let mut named: Vec<(&'a BackendRef, u32)> = Vec::new();
        for (ri, rule) in ing.rules.iter().enumerate() {
            if !is_host(rule.host.as_deref(), self.pattern) {
                continue;
            }
            let ri = index(ri);
            if self.declared.is_none() {
                self.declared = Some((origin, ri));
            }
            if self.default.is_none() {
                self.default = default;
            }
            for (pi, p) in rule.paths.iter().enumerate() {
                let field = Field::Path { rule: ri, path: index(pi) };
                // A path that asks for regex mode (`use-regex`, or a rewrite to something else)
                // may hold regex syntax (`?`): it is checked as a regex when its host is built.
                let regex = ing.policy.use_regex
                    || ing.policy.rewrite_target.as_ref().is_some_and(|t| t.as_str() != &*p.path);
                let compiled = match path::compile(&p.path, p.path_type, regex) {
                    Ok(c) => c,
                    Err(why) => {
                        self.reject(
                            &ing.origin,
                            field,
                            Reason::InvalidPath { path: p.path.to_string(), why },
                        );
                        continue;
                    }
                };
                let cached = named.iter().find(|(b, _)| **b == *p.backend).map(|&(_, i)| i);
                let backend = match cached.map_or_else(|| self.resolved_backend(&p.backend), Ok) {
                    Ok(b) => b,
                    Err(reason) => {
                        self.reject(&ing.origin, field, reason);
                        continue;
                    }
                };
                if cached.is_none() {
                    named.push((&p.backend, backend));
                }
                self.routes.push(PendingRoute {
                    path: compiled,
                    written: if p.path.is_empty() { "/" } else { &p.path },
                    regex,
                    canary: None,
                    kind: MatchKind::of(p.path_type),
                    path_type: p.path_type,
                    backend,
                    origin,
                    rule: ri,
                    index: index(pi),
                });
            }
        }
        self.tls |= ing.tls_section || !ing.tls.is_empty();
        self.www_redirect |= ing.www_redirect;
        if ing.ssl_passthrough && self.passthrough.is_none() {
            self.passthrough = Some(origin);
        }
        if self.client_auth.is_none() {
            self.client_auth.clone_from(&ing.client_auth);
        }
        match self.aliases {
            _ if ing.aliases.is_empty() => {}
            None => self.aliases = Some((origin, &ing.aliases)),
            // ingress-nginx keeps the first Ingress's aliases for a host, and skips the rest.
            Some((first, _)) => {
                let why = format!(
                    "host `{}` already has the aliases of {}, which takes precedence (older, or first)",
                    self.pattern, self.members[first as usize].origin
                );
                for alias in &ing.aliases {
                    self.reject(
                        &ing.origin,
                        Field::Annotation("server-alias"),
                        Reason::Alias { alias: alias.clone(), why: why.clone() },
                    );
                }
            }
        }
    }

    /// A canary Ingress: each of its paths for this host becomes the alternative backend of
    /// the route with the same path and path type; the rest of it routes nothing.
    fn add_canary(&mut self, ing: &'a Ingress) {
        let Some(rule) = &ing.canary else { return };
        // A pattern that does not compile rejects the whole canary (the Ingress's rejection).
        let Ok(pattern) = rule.header_pattern.as_deref().map(crate::canary::header_pattern).transpose()
        else {
            return;
        };
        let origin = self.add_origin(ing, None);
        for (ri, r) in ing.rules.iter().enumerate() {
            if !is_host(r.host.as_deref(), self.pattern) {
                continue;
            }
            let ri = index(ri);
            for (pi, p) in r.paths.iter().enumerate() {
                let field = Field::Path { rule: ri, path: index(pi) };
                let written = if p.path.is_empty() { "/" } else { &p.path };
                let found =
                    self.routes.iter().position(|m| m.written == written && m.path_type == p.path_type);
                let Some(i) = found else {
                    self.reject(
                        &ing.origin,
                        field,
                        no_route_to_split(r.host.as_deref(), written, p.path_type),
                    );
                    continue;
                };
                if let Some(other) = self.routes[i].canary {
                    let winner = self.members[self.canaries[other as usize].origin as usize].origin.clone();
                    let why = format!("{winner} already splits this route (the older canary wins)");
                    self.reject(&ing.origin, field, Reason::Canary { why });
                    continue;
                }
                let backend = match self.resolved_backend(&p.backend) {
                    Ok(b) => b,
                    Err(reason) => {
                        self.reject(&ing.origin, field, reason);
                        continue;
                    }
                };
                let canary = index(self.canaries.len());
                self.canaries.push(CompiledCanary {
                    backend,
                    origin,
                    rule: (**rule).clone(),
                    pattern: pattern.clone(),
                });
                self.routes[i].canary = Some(canary);
            }
        }
    }

    /// Orders the routes by precedence, sets aside the losers of conflicts, and lays the
    /// block out.
    fn finish(mut self, regexes: &mut Regexes, served: bool) -> HostBlock {
        let name = host_name(self.pattern);
        let mut routes_in = std::mem::take(&mut self.routes);
        let regex_host = routes_in.iter().any(|r| r.regex);
        let mut compiled_regexes = Vec::new();
        if regex_host {
            routes_in.sort_by(regex_order);
            self.compile_regexes(&mut routes_in, regexes, &mut compiled_regexes);
        } else {
            routes_in.sort_unstable_by(precedence);
        }
        // Settle the conflicts first: the arena holds the keys of the routes that won, in
        // order, right after the name (see `table::keys`), then the paths of the losers.
        let mut winners: Vec<usize> = Vec::with_capacity(routes_in.len());
        let mut losers = Vec::new();
        for (i, r) in routes_in.iter().enumerate() {
            match winners.last() {
                Some(&w) if same_claim(&routes_in[w], r, regex_host) => {
                    let w = &routes_in[w];
                    self.rejected.push(Rejection {
                        origin: self.members[r.origin as usize].origin.clone(),
                        field: r.field(),
                        reason: Reason::Duplicate {
                            winner: self.members[w.origin as usize].origin.clone(),
                            winner_field: w.field(),
                        },
                    });
                    losers.push((i, index(winners.len() - 1)));
                }
                _ => winners.push(i),
            }
        }
        // Outside regex mode a route keeps the path as written, of which the matched form is
        // a prefix (a `Prefix` path's trailing slashes trimmed): both in one span of the arena.
        // A regex host's routes match as written.
        let texts = |r: &PendingRoute<'a>| -> (&'a str, &'a str) {
            match r.written.strip_prefix(r.path) {
                _ if regex_host => (r.written, ""),
                Some(rest) if rest.len() <= MAX_TRAILING => (r.path, rest),
                _ => (r.path, ""),
            }
        };
        let mut arena =
            String::with_capacity(name.len() + routes_in.iter().map(|r| r.written.len() + 4).sum::<usize>());
        arena.push_str(name);
        let name_span = Span { start: 0, len: index(name.len()) };
        let mut routes = Vec::with_capacity(winners.len());
        for &i in &winners {
            let r = &routes_in[i];
            let (path, rest) = texts(r);
            let span = push_key(&mut arena, r.kind, path, rest);
            routes.push(compiled(r, span, rest));
        }
        let mut shadowed = Vec::with_capacity(losers.len());
        for (i, winner) in losers {
            let r = &routes_in[i];
            let (path, rest) = texts(r);
            let span = Span { start: index(arena.len()), len: index(path.len()) };
            arena.push_str(path);
            arena.push_str(rest);
            shadowed.push(Shadowed { route: compiled(r, span, rest), winner });
        }
        let kind = self.pattern.specificity();
        let passthrough = self.passthrough.and_then(|origin| {
            // ingress-nginx passes the connections to the backend of the host's `/` path.
            let root = routes_in.iter().find(|r| r.written == "/").map(|r| r.backend);
            let why = match (kind, root) {
                (2, _) => "a rule without a host matches no server name; TLS is terminated here",
                (_, None) => {
                    "the host has no `/` path, whose backend would get the connections; TLS is terminated here, as ingress-nginx does"
                }
                (_, Some(backend)) => return Some(backend),
            };
            self.rejected.push(Rejection {
                origin: self.members[origin as usize].origin.clone(),
                field: Field::Annotation("ssl-passthrough"),
                reason: Reason::Passthrough { host: self.pattern.to_string(), why: why.to_owned() },
            });
            None
        });
        let aliases = self.aliases.map(|(origin, names)| {
            Box::new(Aliases { origin: self.members[origin as usize].origin.clone(), names: names.to_vec() })
        });
        let mut block = HostBlock {
            kind,
            arena: arena.into_boxed_str(),
            name: name_span,
            routes: routes.into_boxed_slice(),
            default: self.default,
            tls: self.tls && kind != 2,
            backends: self.backends.into_boxed_slice(),
            members: self.members.into_boxed_slice(),
            canaries: self.canaries.into_boxed_slice(),
            regexes: compiled_regexes.into_boxed_slice(),
            shadowed: shadowed.into_boxed_slice(),
            passthrough,
            client_auth: self.client_auth.filter(|_| kind != 2),
            served,
            declared: self.declared,
            aliases,
            www_redirect: self.www_redirect,
            rejected: self.rejected,
            fingerprint: 0,
        };
        block.fingerprint = fingerprint(&block);
        block
    }

    /// Compiles each route of a regex host: a path without regex syntax matches as
    /// [`MatchKind::Folded`], any other as a [`MatchKind::Regex`] (one regex per distinct
    /// pattern in the block). A path that is not a usable regex is rejected and left out.
    fn compile_regexes(
        &mut self,
        routes: &mut Vec<PendingRoute<'a>>,
        cache: &mut Regexes,
        compiled: &mut Vec<regex::bytes::Regex>,
    ) {
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let members = &self.members;
        let rejected = &mut self.rejected;
        routes.retain_mut(|r| {
            if !path::has_regex_syntax(r.written) {
                r.kind = MatchKind::Folded;
                return true;
            }
            if let Some(&i) = seen.get(r.written) {
                r.kind = MatchKind::Regex(i);
                return true;
            }
            let regex = match cache.get(r.written) {
                Some(regex) => Ok(regex.clone()),
                None => crate::rewrite::location_regex(r.written).inspect(|regex| {
                    cache.insert(r.written.to_owned(), regex.clone());
                }),
            };
            match regex {
                Ok(regex) => {
                    let i = index(compiled.len());
                    seen.insert(r.written, i);
                    r.kind = MatchKind::Regex(i);
                    compiled.push(regex);
                    true
                }
                Err(why) => {
                    rejected.push(Rejection {
                        origin: members[r.origin as usize].origin.clone(),
                        field: r.field(),
                        reason: Reason::InvalidPath { path: r.written.to_owned(), why },
                    });
                    false
                }
            }
        });
    }
}

/// Why a canary's path splits nothing: no other Ingress routes its host, path and path type.
pub(super) fn no_route_to_split(host: Option<&str>, written: &str, path_type: PathType) -> Reason {
    let why = format!(
        "no other Ingress routes host `{}`, path `{written}` ({path_type}): nothing to split",
        host.unwrap_or("*")
    );
    Reason::Canary { why }
}

/// A hash of what a block routes: its name and paths, how many routes, its backends.
fn fingerprint(block: &HostBlock) -> u64 {
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    block.kind.hash(&mut h);
    block.arena.hash(&mut h);
    block.routes.len().hash(&mut h);
    for b in &block.backends {
        b.key().hash(&mut h);
    }
    h.finish()
}

/// The text a host is looked up by: the exact name, or the wildcard's suffix.
pub(super) fn host_name(pattern: &HostPattern) -> &str {
    match pattern {
        HostPattern::Exact(h) | HostPattern::Wildcard(h) => h,
        HostPattern::Any => "",
    }
}

/// The compiled form of `r`, matched by the arena's `path`, written with `trailing` after it
/// (at most `MAX_TRAILING` bytes).
fn compiled(r: &PendingRoute<'_>, path: Span, trailing: &str) -> CompiledRoute {
    CompiledRoute {
        path,
        trailing: u8::try_from(trailing.len()).unwrap_or(0),
        backend: r.backend,
        origin: r.origin,
        rule: r.rule,
        index: r.index,
        kind: r.kind,
        path_type: r.path_type,
        canary: r.canary,
    }
}
