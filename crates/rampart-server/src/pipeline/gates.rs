//! The security gates every request passes before routing: the one client identity (trusted
//! proxies), GeoIP facts, and the listener's access list; plus the settings of the connection
//! gates (PROXY protocol sources, HTTP/2 limits, body rate) compiled from the config.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http::header::{HeaderName, HeaderValue};
use rampart_config::model::{ClientIpHeader, Listener};
use rampart_config::{ConfigError, RawConfig};
use rampart_core::{Body, IpSet, ProxyError, RequestCtx, client_ip};
use rampart_filters::{AccessList, GeoIp};

/// A listener's gates.
#[derive(Debug, Default)]
pub(crate) struct ListenerGates {
    /// Peers whose forwarding header is believed.
    pub(crate) trusted: IpSet,
    /// Which forwarding header they write.
    pub(crate) header: ClientIpHeader,
    /// Peers that must open with a PROXY protocol header (`None`: nobody).
    pub(crate) proxy_protocol: Option<IpSet>,
    /// The listener's access list.
    pub(crate) access: Option<AccessList>,
}

impl ListenerGates {
    /// Compiles `l`'s gates (its `trusted_proxies` replace the global list when given).
    pub(crate) fn new(l: &Listener, raw: &RawConfig) -> Self {
        let trusted = l
            .trusted_proxies
            .as_ref()
            .unwrap_or(&raw.client_ip.trusted_proxies);
        Self {
            trusted: IpSet::new(trusted.iter().map(rampart_config::Located::get)),
            header: raw.client_ip.header,
            proxy_protocol: l
                .proxy_protocol
                .as_ref()
                .map(|p| IpSet::new(p.from.iter().map(rampart_config::Located::get))),
            access: l.access.as_ref().map(AccessList::new),
        }
    }
}

/// Process-wide gates.
#[derive(Debug)]
pub(crate) struct GlobalGates {
    /// GeoIP databases, when configured.
    pub(crate) geo: Option<Arc<GeoIp>>,
    /// Request header carrying the client's country upstream.
    pub(crate) country_header: Option<HeaderName>,
    /// Slowest accepted request body (bytes per second; 0: off) and its grace period.
    pub(crate) min_body_rate: u64,
    /// Time a body may take before the rate applies.
    pub(crate) body_grace: Duration,
    /// HTTP/2 connection limits.
    pub(crate) http2: rampart_config::model::Http2Section,
    /// Connection caps (0: none).
    pub(crate) max_connections: usize,
    /// Per-IP connection cap (0: none).
    pub(crate) max_connections_per_ip: usize,
}

impl GlobalGates {
    /// Compiles the process-wide gates, reading the GeoIP files.
    pub(crate) fn new(raw: &RawConfig) -> Result<Self, Vec<ConfigError>> {
        let geo_cfg = &raw.geoip;
        let geo = if geo_cfg.country_db.is_some() || geo_cfg.asn_db.is_some() {
            let country = geo_cfg.country_db.as_ref().map(|p| Path::new(p.as_str()));
            let asn = geo_cfg.asn_db.as_ref().map(|p| Path::new(p.as_str()));
            match GeoIp::open(country, asn) {
                Ok(geo) => Some(Arc::new(geo)),
                Err(msg) => {
                    let span = geo_cfg
                        .country_db
                        .as_ref()
                        .or(geo_cfg.asn_db.as_ref())
                        .map(rampart_config::Located::span);
                    return Err(vec![ConfigError::new(span, "geoip", msg)]);
                }
            }
        } else {
            None
        };
        let country_header = geo_cfg
            .country_header
            .as_ref()
            .and_then(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok());
        Ok(Self {
            geo,
            country_header,
            min_body_rate: raw.limits.min_body_rate.get(),
            body_grace: raw.timeouts.body_grace.get(),
            http2: raw.http2.clone(),
            max_connections: raw.limits.max_connections,
            max_connections_per_ip: raw.limits.max_connections_per_ip,
        })
    }
}

/// Resolves the request's one client IP and its GeoIP facts. Runs once, before anything reads
/// `ctx.client_ip`.
pub(crate) fn identify_client(
    req: &Request<Body>,
    ctx: &mut RequestCtx,
    listener: &ListenerGates,
    global: &GlobalGates,
) {
    ctx.client_ip = client_ip::resolve(
        ctx.conn.peer.ip(),
        req.headers(),
        &listener.trusted,
        listener.header,
    );
    if let Some(geo) = &global.geo {
        ctx.country = geo.country(ctx.client_ip);
        ctx.asn = geo.asn(ctx.client_ip);
    }
}

/// The listener's access list, then the country header: a client-sent copy is always removed,
/// and the looked-up country (if any) is set.
pub(crate) fn admit(
    req: &mut Request<Body>,
    ctx: &RequestCtx,
    listener: &ListenerGates,
    global: &GlobalGates,
) -> Result<(), ProxyError> {
    if let Some(access) = &listener.access {
        access.check(ctx)?;
    }
    if let Some(name) = &global.country_header {
        let headers = req.headers_mut();
        headers.remove(name);
        if let Some(country) = ctx.country {
            headers.insert(
                name.clone(),
                HeaderValue::from_bytes(country.as_bytes())
                    .unwrap_or_else(|_| HeaderValue::from_static("--")),
            );
        }
    }
    Ok(())
}
