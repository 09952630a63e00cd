//! Access control: allow and deny lists of IP networks, countries and autonomous systems,
//! checked against the request's one client IP (and its GeoIP facts). A listener's list runs
//! before routing; a route's list runs as the route's `access` stage.
//!
//! Every rule must pass: a deny list refuses what it lists, and a non-empty allow list refuses
//! everything it does not list. A country or ASN allow list refuses clients whose country or
//! ASN is unknown. Checks are allocation-free; only a refusal formats its log detail.

use http::Request;
use rampart_config::ConfigError;
use rampart_config::model::AccessRules;
use rampart_core::{
    Body, CountryCode, ErrorKind, Flow, IpSet, Phases, ProxyError, RequestCtx, Stage, StageFuture,
};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// A compiled `access` table.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    allow: IpSet,
    deny: IpSet,
    allow_countries: Vec<CountryCode>,
    deny_countries: Vec<CountryCode>,
    allow_asns: Vec<u32>,
    deny_asns: Vec<u32>,
}

impl AccessList {
    /// Compiles validated rules (country codes were checked by the config).
    #[must_use]
    pub fn new(rules: &AccessRules) -> Self {
        let countries = |list: &[rampart_config::Located<String>]| {
            let mut codes: Vec<CountryCode> =
                list.iter().filter_map(|c| CountryCode::parse(c)).collect();
            codes.sort_unstable();
            codes.dedup();
            codes
        };
        let asns = |list: &[rampart_config::Located<u32>]| {
            let mut asns: Vec<u32> = list.iter().map(|a| **a).collect();
            asns.sort_unstable();
            asns.dedup();
            asns
        };
        Self {
            allow: IpSet::new(rules.allow.iter().map(rampart_config::Located::get)),
            deny: IpSet::new(rules.deny.iter().map(rampart_config::Located::get)),
            allow_countries: countries(&rules.allow_countries),
            deny_countries: countries(&rules.deny_countries),
            allow_asns: asns(&rules.allow_asns),
            deny_asns: asns(&rules.deny_asns),
        }
    }

    /// True when a rule needs the client's country.
    #[must_use]
    pub fn needs_country(&self) -> bool {
        !self.allow_countries.is_empty() || !self.deny_countries.is_empty()
    }

    /// True when a rule needs the client's ASN.
    #[must_use]
    pub fn needs_asn(&self) -> bool {
        !self.allow_asns.is_empty() || !self.deny_asns.is_empty()
    }

    /// Lets the request through, or refuses it with `ip_denied` / `geo_denied` (403).
    ///
    /// # Errors
    /// The client is denied, or not allowed, by one of the lists.
    pub fn check(&self, ctx: &RequestCtx) -> Result<(), ProxyError> {
        let ip = ctx.client_ip;
        if self.deny.contains(ip) {
            return Err(ProxyError::new(
                ErrorKind::IpDenied,
                format!("client {ip} is in a deny list"),
            ));
        }
        if !self.allow.is_empty() && !self.allow.contains(ip) {
            return Err(ProxyError::new(
                ErrorKind::IpDenied,
                format!("client {ip} is not in the allow list"),
            ));
        }
        check_listed(
            "country",
            ctx.country,
            &self.allow_countries,
            &self.deny_countries,
        )?;
        check_listed("ASN", ctx.asn, &self.allow_asns, &self.deny_asns)
    }
}

/// A GeoIP fact against its allow and deny lists (sorted).
fn check_listed<T: Ord + Copy + std::fmt::Display>(
    what: &str,
    value: Option<T>,
    allow: &[T],
    deny: &[T],
) -> Result<(), ProxyError> {
    if let Some(v) = value
        && deny.binary_search(&v).is_ok()
    {
        return Err(ProxyError::new(
            ErrorKind::GeoDenied,
            format!("{what} {v} is in a deny list"),
        ));
    }
    if allow.is_empty() {
        return Ok(());
    }
    match value {
        Some(v) if allow.binary_search(&v).is_ok() => Ok(()),
        Some(v) => Err(ProxyError::new(
            ErrorKind::GeoDenied,
            format!("{what} {v} is not in the allow list"),
        )),
        None => Err(ProxyError::new(
            ErrorKind::GeoDenied,
            format!("{what} unknown and an allow list is set"),
        )),
    }
}

/// A route's `access` table as a stage.
#[derive(Debug)]
pub struct AccessStage(pub AccessList);

impl Stage for AccessStage {
    fn name(&self) -> &'static str {
        "access"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        _req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        self.0.check(ctx).map(|()| Flow::Continue).into()
    }
}

/// Builds the `access` stage of routes that have an `access` table.
#[derive(Debug, Clone, Copy)]
pub struct AccessStages;

impl StageFactory for AccessStages {
    fn name(&self) -> &'static str {
        "access"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        Ok(route
            .route
            .access
            .iter()
            .map(|access| Box::new(AccessStage(AccessList::new(access))) as Box<dyn Stage>)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};
    use std::sync::Arc;

    use rampart_config::Located;
    use rampart_core::ConnInfo;

    use super::*;

    fn ctx(ip: &str, country: Option<&str>, asn: Option<u32>) -> RequestCtx {
        let peer: SocketAddr = SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 1000);
        let conn = Arc::new(ConnInfo::new(peer, peer, "l".into(), "http"));
        let mut ctx = RequestCtx::new(
            conn,
            http::Method::GET,
            http::Uri::default(),
            http::Version::HTTP_11,
        );
        ctx.country = country.and_then(CountryCode::parse);
        ctx.asn = asn;
        ctx
    }

    fn nets(list: &[&str]) -> Vec<Located<rampart_config::Cidr>> {
        list.iter()
            .map(|n| Located::new(n.parse().unwrap()))
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<Located<String>> {
        list.iter().map(|s| Located::new((*s).to_owned())).collect()
    }

    fn code(r: Result<(), ProxyError>) -> Option<&'static str> {
        r.err().map(|e| e.kind.code())
    }

    #[test]
    fn deny_wins_and_allow_lists_refuse_the_rest() {
        let list = AccessList::new(&AccessRules {
            allow: nets(&["10.0.0.0/8"]),
            deny: nets(&["10.6.6.0/24"]),
            ..AccessRules::default()
        });
        assert_eq!(code(list.check(&ctx("10.1.2.3", None, None))), None);
        assert_eq!(
            code(list.check(&ctx("10.6.6.6", None, None))),
            Some("ip_denied")
        );
        assert_eq!(
            code(list.check(&ctx("192.0.2.1", None, None))),
            Some("ip_denied")
        );
        assert_eq!(code(list.check(&ctx("::1", None, None))), Some("ip_denied"));
    }

    #[test]
    fn an_empty_table_allows_everyone() {
        let list = AccessList::new(&AccessRules::default());
        assert_eq!(code(list.check(&ctx("192.0.2.1", None, None))), None);
        assert!(!list.needs_country() && !list.needs_asn());
    }

    #[test]
    fn countries_and_asns_follow_the_same_rules_and_unknown_fails_an_allow_list() {
        let list = AccessList::new(&AccessRules {
            allow_countries: strings(&["DE", "FR"]),
            deny_asns: vec![Located::new(64_500)],
            ..AccessRules::default()
        });
        assert!(list.needs_country() && list.needs_asn());
        assert_eq!(
            code(list.check(&ctx("192.0.2.1", Some("DE"), Some(1)))),
            None
        );
        assert_eq!(
            code(list.check(&ctx("192.0.2.1", Some("US"), None))),
            Some("geo_denied")
        );
        assert_eq!(
            code(list.check(&ctx("192.0.2.1", None, None))),
            Some("geo_denied")
        );
        assert_eq!(
            code(list.check(&ctx("192.0.2.1", Some("FR"), Some(64_500)))),
            Some("geo_denied")
        );
        let deny = AccessList::new(&AccessRules {
            deny_countries: strings(&["KP"]),
            allow_asns: vec![Located::new(7)],
            ..AccessRules::default()
        });
        assert_eq!(
            code(deny.check(&ctx("192.0.2.1", Some("KP"), Some(7)))),
            Some("geo_denied")
        );
        assert_eq!(code(deny.check(&ctx("192.0.2.1", None, Some(7)))), None);
        assert_eq!(
            code(deny.check(&ctx("192.0.2.1", None, None))),
            Some("geo_denied")
        );
    }
}
