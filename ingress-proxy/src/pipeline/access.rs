//! nginx's access phase: the route's source ranges, basic and external authentication, and
//! how `satisfy` combines them; and which routes the global external authentication covers.

use ingress_core::{Cidr, ExternalAuth, MatchedBy, Route, admits};

use super::{Facts, State, external_auth};
use crate::config::RuntimeSettings;

/// What the access phase decided.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'t> {
    /// The refusal (`403`, `401`), if it is decided already.
    pub(crate) refused: Option<u16>,
    /// The external authentication still to ask.
    pub(crate) pending: Option<external_auth::Pending<'t>>,
    /// Basic authentication refused the credentials (its `WWW-Authenticate` goes with a
    /// `401`, whichever check the `401` came from, as nginx's `auth_basic` sets it).
    pub(crate) basic_refused: bool,
}

/// nginx's access phase over the route's checks (source ranges, basic authentication, then
/// external authentication): the refusal, or the external authentication still to ask.
///
/// With `satisfy all` (the default) the first refusal stands. With `satisfy any` one passing
/// check is enough, a check without rules for the client counts for nothing, and when all
/// that apply refuse, `401` wins over `403`, as nginx decides.
pub(crate) fn check<'t>(
    route: &Route<'t>,
    facts: &Facts<'_>,
    state: &State,
    allow: &[Cidr],
    deny: &[Cidr],
    external: Option<&'t ExternalAuth>,
) -> Access<'t> {
    let in_deny = facts.client.is_some_and(|ip| deny.iter().any(|c| c.contains(ip)));
    let ranges = if !allow.is_empty() {
        Some(admits(facts.client, allow, deny))
    } else if in_deny {
        Some(false)
    } else {
        None
    };
    let basic = route.policy.basic_auth.as_ref().map(|a| state.verified.admits(a, facts.authorization));
    let decided = |refused, pending| Access { refused, pending, basic_refused: basic == Some(false) };
    if route.policy.satisfy_any {
        if ranges == Some(true) || basic == Some(true) {
            return decided(None, None);
        }
        let prior = if basic == Some(false) {
            Some(401)
        } else if ranges == Some(false) {
            Some(403)
        } else {
            None
        };
        return match external {
            Some(auth) => decided(None, Some(external_auth::Pending { auth, prior })),
            None => decided(prior, None),
        };
    }
    if ranges == Some(false) {
        decided(Some(403), None)
    } else if basic == Some(false) {
        decided(Some(401), None)
    } else {
        decided(None, external.map(|auth| external_auth::Pending { auth, prior: None }))
    }
}

/// The global external authentication (`global-auth-url`) of a route without its own: not
/// with `enable-global-auth: "false"`, nor on a path of `no-auth-locations`, nor on the
/// controller's default backend.
pub(crate) fn global_auth<'s>(route: &Route<'_>, settings: &'s RuntimeSettings) -> Option<&'s ExternalAuth> {
    let auth = settings.global_auth.as_deref()?;
    let path = match route.matched_by {
        MatchedBy::Path { path, .. } => path,
        MatchedBy::IngressDefault { .. } => "/",
        MatchedBy::ControllerDefault => return None,
    };
    let exempt = settings.no_auth_locations.iter().any(|l| path.starts_with(l.as_str()));
    (!route.policy.no_global_auth && !exempt).then_some(auth)
}
