//! Checks of `[listeners.http3]`: HTTP/3 needs TLS termination on the listener (QUIC is always
//! encrypted), cannot share a listener with TLS passthrough, and needs sane limits.

use crate::diag::ConfigError;
use crate::load::Positions;
use crate::model::{ClientAuth, RawConfig};

/// Every HTTP/3 problem in `raw`.
pub(crate) fn validate(raw: &RawConfig, positions: &Positions) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        let Some(h3) = &l.http3 else {
            continue;
        };
        let path = format!("{}.http3", positions.item("listeners", i));
        let mut refuse = |key: &str, msg: String| {
            let at = if key.is_empty() {
                path.clone()
            } else {
                format!("{path}.{key}")
            };
            errors.push(ConfigError::new(None, at, msg));
        };
        if l.tls.is_none() {
            refuse(
                "",
                format!(
                    "listener {:?} enables HTTP/3 but terminates no TLS: QUIC is always encrypted, so `http3` needs `[listeners.tls]` with the certificates to serve",
                    l.name.get()
                ),
            );
        }
        if l.passthrough.is_some() {
            refuse(
                "",
                format!(
                    "listener {:?} passes TLS through by SNI, which QUIC cannot do: serve HTTP/3 on a listener without `passthrough`",
                    l.name.get()
                ),
            );
        }
        if h3.early_data
            && l.tls
                .as_ref()
                .is_some_and(|t| t.client_auth != ClientAuth::None)
        {
            refuse(
                "early_data",
                "0-RTT cannot be combined with client certificates: requests in early data would arrive before the certificate is verified (set `tls.client_auth = \"none\"` or turn `early_data` off)".to_owned(),
            );
        }
        if h3.max_concurrent_streams == 0 {
            refuse(
                "max_concurrent_streams",
                "0 streams would let no request through: expected at least 1".to_owned(),
            );
        }
        if h3.idle_timeout.get().is_zero() {
            refuse(
                "idle_timeout",
                "an idle timeout of 0 would keep idle connections forever: expected a duration such as \"30s\"".to_owned(),
            );
        }
        // QUIC carries the idle timeout in milliseconds up to 2^62.
        if h3.idle_timeout.get().as_secs() > 86_400 {
            refuse(
                "idle_timeout",
                "more than a day: expected at most \"24h\"".to_owned(),
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    fn refused(http3: &str, tls: &str) -> String {
        let text = format!(
            "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8443\"\n{tls}\n[listeners.http3]\n{http3}\n\n[[routes]]\nname = \"r\"\necho = true\n"
        );
        crate::load_str(&text, "t.toml")
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default()
    }

    const TLS: &str =
        "[listeners.tls]\n[[listeners.tls.certificates]]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n";

    #[test]
    fn http3_needs_tls() {
        assert!(refused("", "").contains("needs `[listeners.tls]`"));
        assert_eq!(refused("", TLS), "");
    }

    #[test]
    fn zero_rtt_is_refused_with_client_certificates() {
        let mtls = TLS.replace(
            "[listeners.tls]\n",
            "[listeners.tls]\nclient_auth = \"required\"\nclient_ca = \"/ca.pem\"\n",
        );
        assert!(refused("early_data = true", &mtls).contains("0-RTT cannot be combined"));
        assert_eq!(refused("early_data = true", TLS), "");
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        assert!(refused("max_concurrent_streams = 0", TLS).contains("at least 1"));
        assert!(refused("idle_timeout = \"0s\"", TLS).contains("idle timeout of 0"));
        assert!(refused("idle_timeout = \"48h\"", TLS).contains("at most"));
        assert!(refused("retry = \"sometimes\"", TLS).contains("retry"));
    }
}
