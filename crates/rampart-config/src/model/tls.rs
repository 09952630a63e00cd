//! TLS settings: `[listeners.tls]` (termination), `[listeners.redirect_https]`,
//! `[listeners.passthrough]`, `[upstreams.tls]` (origination) and a route's `client_cert`
//! requirement.
//!
//! Only the shape and the values are checked here; files are read and certificates verified when
//! the config is compiled (`rampart check` does both).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::{ByteSize, HumanDuration};

/// Lowest TLS version a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
pub enum TlsVersion {
    /// TLS 1.2 (ECDHE key exchange with AEAD ciphers only) and TLS 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    None,
    /// A certificate is asked for; one that is sent must verify against `client_ca`.
    Optional,
    /// Connections without a certificate that verifies against `client_ca` fail the handshake.
    Required,
}

/// `[listeners.tls]`: terminate TLS on this listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates, chosen by the SNI name the client asks for.
    pub certificates: Vec<TlsCertificate>,
    /// Lowest protocol version accepted: `"1.2"` or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Issue session tickets (stateless resumption, TLS 1.3 and TLS 1.2); ticket keys rotate
    /// automatically.
    #[serde(default = "yes")]
    pub session_tickets: bool,
    /// Sessions kept in the server-side session cache (TLS 1.2 session IDs, TLS 1.3 stateful
    /// resumption); 0 turns it off (tickets still resume unless `session_tickets` is off).
    #[serde(default = "default_session_cache")]
    pub session_cache: usize,
    /// Accept TLS 1.3 early data (0-RTT) on resumed sessions. Only safe methods are served from
    /// early data (others get 425 Too Early); forwarded ones carry `Early-Data: 1`. Resumption
    /// then uses the single-use session cache instead of stateless tickets.
    #[serde(default)]
    pub early_data: bool,
    /// Most bytes of early data accepted per connection.
    #[serde(default = "default_max_early_data")]
    pub max_early_data: ByteSize,
    /// Client certificates: `none`, `optional` or `required`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// PEM bundle of the CAs client certificates must chain to (needed unless `client_auth` is
    /// `none`).
    #[serde(default)]
    pub client_ca: Option<Located<String>>,
    /// PEM files of certificate revocation lists checked for client certificates.
    #[serde(default)]
    pub client_crl: Vec<Located<String>>,
    /// Headers that carry the verified client certificate to upstreams.
    #[serde(default)]
    pub client_cert_headers: ClientCertHeaders,
    /// Answer 421 when a request's Host is not covered by the certificate the connection was
    /// made with (stops one certificate's connections from being used for another's hosts).
    #[serde(default)]
    pub strict_sni: bool,
    /// Send `Strict-Transport-Security` on every response of this listener.
    #[serde(default)]
    pub hsts: Option<Hsts>,
    /// Time allowed for the TLS handshake (default: `timeouts.header_read`).
    #[serde(default)]
    pub handshake_timeout: Option<HumanDuration>,
}

/// One certificate chain and its key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// PEM file with the certificate followed by its intermediates.
    pub cert: Located<String>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519).
    pub key: Located<String>,
    /// SNI names this certificate serves, exact (`api.example.com`) or wildcard
    /// (`*.example.com`); default: the DNS names in the certificate.
    #[serde(default)]
    pub names: Vec<Located<String>>,
    /// Serve this certificate when the client sends no SNI or one no certificate matches
    /// (otherwise such handshakes fail).
    #[serde(default)]
    pub default: bool,
    /// DER file with an OCSP response to staple; reloaded when it changes.
    #[serde(default)]
    pub ocsp: Option<Located<String>>,
}

/// Header names for the verified client certificate; client-sent copies are always removed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCertHeaders {
    /// SHA-256 fingerprint of the client certificate (lowercase hex).
    pub fingerprint: String,
    /// Subject distinguished name (RFC 4514 form).
    pub subject: String,
    /// Subject alternative names, comma separated (`DNS:…`, `URI:…`, `IP:…`, `email:…`).
    pub sans: String,
}

impl Default for ClientCertHeaders {
    fn default() -> Self {
        Self {
            fingerprint: "x-client-cert-sha256".to_owned(),
            subject: "x-client-cert-subject".to_owned(),
            sans: "x-client-cert-sans".to_owned(),
        }
    }
}

/// `Strict-Transport-Security` (RFC 6797).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    /// How long browsers remember to use HTTPS only.
    #[serde(default = "default_hsts_max_age")]
    pub max_age: HumanDuration,
    /// Also for every subdomain.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Ask to be included in browsers' preload lists (needs a max-age of a year or more and
    /// `include_subdomains`).
    #[serde(default)]
    pub preload: bool,
}

/// `[listeners.redirect_https]`: this plaintext listener answers every request (but the health
/// endpoints) with a redirect to the same host and path over HTTPS.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectHttps {
    /// 301, 302, 307 or 308.
    #[serde(default = "default_redirect_https_status")]
    pub status: Located<u16>,
    /// Port of the HTTPS listener, when it is not 443.
    #[serde(default)]
    pub port: Option<u16>,
}

/// `[listeners.passthrough]`: read the SNI name of the ClientHello and forward the raw
/// connection to the upstream chosen by it. Next to `[listeners.tls]`, only the names in `sni`
/// are forwarded and every other connection is terminated.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Passthrough {
    /// SNI name (exact or `*.wildcard`) → upstream name.
    #[serde(default)]
    pub sni: BTreeMap<String, Located<String>>,
    /// Upstream for connections whose SNI matches nothing, or that send none (otherwise they
    /// are closed); not with `[listeners.tls]`.
    #[serde(default)]
    pub default: Option<Located<String>>,
    /// Time allowed for the ClientHello to arrive.
    #[serde(default = "default_client_hello_timeout")]
    pub client_hello_timeout: HumanDuration,
    /// Idle time after which a forwarded connection is closed.
    #[serde(default = "default_passthrough_idle")]
    pub idle_timeout: HumanDuration,
}

/// `[upstreams.tls]`: speak TLS to the upstream's targets.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Use TLS (set `false` to keep the section but connect in cleartext).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// PEM bundle of the CAs the targets' certificates must chain to; default: the system's
    /// trust store.
    #[serde(default)]
    pub ca: Option<Located<String>>,
    /// SNI name sent and verified (default: the target's host name; IP targets send no SNI and
    /// are verified against the IP).
    #[serde(default)]
    pub server_name: Option<Located<String>>,
    /// PEM client certificate chain for mTLS to the upstream (with `client_key`).
    #[serde(default)]
    pub client_cert: Option<Located<String>>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<Located<String>>,
    /// Lowest protocol version: `"1.2"` or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Do not verify the targets' certificates. Dangerous; logged as a warning at startup.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A route's `client_cert`: a verified client certificate is required (`required = true`), and
/// when fingerprints or subjects are listed it must match one of them (403 otherwise, also
/// without a certificate).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertRequirement {
    /// Any certificate the listener verified (against its `client_ca`) is enough; listing
    /// `fingerprints` or `subjects` implies it.
    #[serde(default)]
    pub required: bool,
    /// SHA-256 fingerprints, hex (colons and case ignored).
    #[serde(default)]
    pub fingerprints: Vec<Located<String>>,
    /// Subject distinguished names in RFC 4514 form, such as `CN=alice,O=Example`.
    #[serde(default)]
    pub subjects: Vec<Located<String>>,
}

const fn yes() -> bool {
    true
}

const fn default_session_cache() -> usize {
    4096
}

const fn default_max_early_data() -> ByteSize {
    ByteSize::kib(16)
}

const fn default_hsts_max_age() -> HumanDuration {
    HumanDuration::secs(31_536_000)
}

const fn default_redirect_https_status() -> Located<u16> {
    Located::new(308)
}

const fn default_client_hello_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

const fn default_passthrough_idle() -> HumanDuration {
    HumanDuration::secs(300)
}
