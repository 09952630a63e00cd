//! `client_cert` on a route: only clients with a verified TLS certificate get through, and when
//! SHA-256 fingerprints or subjects are listed only those whose certificate matches one; everyone
//! else (also without a certificate, or over cleartext) gets 403.

use http::Request;
use rampart_config::ConfigError;
use rampart_config::model::ClientCertRequirement;
use rampart_core::{Body, ErrorKind, Flow, Phases, ProxyError, RequestCtx, Stage, StageFuture};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// The compiled requirement.
#[derive(Debug, Clone)]
pub struct ClientCertCheck {
    /// Any verified certificate is enough (no fingerprint or subject listed).
    any: bool,
    fingerprints: Vec<String>,
    subjects: Vec<String>,
}

/// Normalizes a distinguished name for comparison: no spaces around `,` and `=`, attribute
/// names uppercase.
#[must_use]
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        match part.trim().split_once('=') {
            Some((k, v)) => {
                out.push_str(&k.trim().to_ascii_uppercase());
                out.push('=');
                out.push_str(v.trim());
            }
            None => out.push_str(part.trim()),
        }
    }
    out
}

impl ClientCertCheck {
    /// Compiles a route's `client_cert` (validated: fingerprints are well-formed).
    #[must_use]
    pub fn new(req: &ClientCertRequirement) -> Self {
        Self {
            any: req.fingerprints.is_empty() && req.subjects.is_empty(),
            fingerprints: req
                .fingerprints
                .iter()
                .filter_map(|f| rampart_config::normalize_fingerprint(f))
                .collect(),
            subjects: req.subjects.iter().map(|s| normalize_dn(s)).collect(),
        }
    }

    fn allows(&self, ctx: &RequestCtx) -> Result<(), &'static str> {
        let cert = ctx
            .conn
            .tls
            .as_ref()
            .and_then(|t| t.client_cert.as_ref())
            .ok_or("no verified client certificate")?;
        if self.any {
            return Ok(());
        }
        let fingerprint = cert.fingerprint.to_str().unwrap_or("");
        if self.fingerprints.iter().any(|f| f == fingerprint) {
            return Ok(());
        }
        let subject = normalize_dn(cert.subject.to_str().unwrap_or(""));
        if self.subjects.contains(&subject) {
            return Ok(());
        }
        Err("client certificate matches no allowed fingerprint or subject")
    }
}

impl Stage for ClientCertCheck {
    fn name(&self) -> &'static str {
        "client_cert"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        _req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        StageFuture::Ready(match self.allows(ctx) {
            Ok(()) => Ok(Flow::Continue),
            Err(why) => Err(ProxyError::new(ErrorKind::ClientCertRejected, why)),
        })
    }
}

/// Builds the `client_cert` stage of routes that require a client certificate.
#[derive(Debug, Clone, Copy)]
pub struct ClientCertStages;

impl StageFactory for ClientCertStages {
    fn name(&self) -> &'static str {
        "client_cert"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        Ok(route
            .route
            .client_cert
            .iter()
            .map(|cc| Box::new(ClientCertCheck::new(cc)) as Box<dyn Stage>)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_compare_without_spacing() {
        assert_eq!(normalize_dn("CN=alice, O=Example"), "CN=alice,O=Example");
        assert_eq!(normalize_dn("cn = alice ,o=Example"), "CN=alice,O=Example");
    }
}
