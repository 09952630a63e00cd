//! Checks of `[tracing]` and `[audit_log]`: the collector URL, the sampling ratio, paths.

use crate::diag::ConfigError;
use crate::model::RawConfig;
use crate::syntax;

/// Every problem with the observability settings in `raw`.
pub(crate) fn validate(raw: &RawConfig) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let t = &raw.tracing;
    let ratio = *t.sampling_ratio.get();
    if !(0.0..=1.0).contains(&ratio) {
        errors.push(ConfigError::new(
            Some(t.sampling_ratio.span()),
            "tracing.sampling_ratio",
            format!("{ratio} is not between 0.0 and 1.0"),
        ));
    }
    if let Err(why) = split_endpoint(t.endpoint.get()) {
        errors.push(ConfigError::new(
            Some(t.endpoint.span()),
            "tracing.endpoint",
            why,
        ));
    }
    for name in t.headers.keys() {
        if !syntax::is_token(name) {
            errors.push(ConfigError::new(
                None,
                format!("tracing.headers.{name}"),
                format!("invalid header name {name:?}"),
            ));
        }
    }
    if t.service_name.trim().is_empty() {
        errors.push(ConfigError::new(
            None,
            "tracing.service_name",
            "must not be empty",
        ));
    }
    if t.export_timeout.get().is_zero() {
        errors.push(ConfigError::new(
            None,
            "tracing.export_timeout",
            "must be greater than 0s",
        ));
    }
    let a = &raw.audit_log;
    if a.path.trim().is_empty() {
        errors.push(ConfigError::new(
            None,
            "audit_log.path",
            "must not be empty: use \"stdout\", \"stderr\" or a file path",
        ));
    }
    if a.security_interval.get().is_zero() {
        errors.push(ConfigError::new(
            None,
            "audit_log.security_interval",
            "must be greater than 0s",
        ));
    }
    errors
}

/// Splits an OTLP collector URL `http://host[:port][/path]` into its authority (with the port,
/// 80 when none is given) and path (`/` when none is given).
///
/// # Errors
/// Another scheme than `http`, no host, or characters that cannot appear in a URL.
pub fn split_endpoint(url: &str) -> Result<(String, String), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "{url:?}: expected http://host:port/path (the collector is reached over cleartext \
             HTTP; put it on loopback or a private network)"
        ));
    };
    if rest.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!("{url:?}: contains spaces or non-ASCII characters"));
    }
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?}: expected a host after http://"));
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let authority = if has_port || (authority.starts_with('[') && authority.ends_with(']')) {
        if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        }
    } else if authority.contains(':') {
        return Err(format!("{url:?}: invalid port"));
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::split_endpoint;

    #[test]
    fn bad_tracing_and_audit_settings_are_refused_with_their_place() {
        let text = "[tracing]\nenabled = true\nsampling_ratio = 1.5\nendpoint = \"https://c:4318\"\n\n[audit_log]\npath = \" \"\nsecurity_interval = \"0s\"\n";
        let err = crate::load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("t.toml:3:18"), "{err}");
        assert!(
            err.contains("tracing.sampling_ratio") && err.contains("1.5 is not between"),
            "{err}"
        );
        assert!(
            err.contains("t.toml:4:12") && err.contains("tracing.endpoint"),
            "{err}"
        );
        assert!(err.contains("audit_log.path"), "{err}");
        assert!(err.contains("audit_log.security_interval"), "{err}");
        let ok = "[tracing]\nenabled = true\nprotocol = \"grpc\"\nendpoint = \"http://127.0.0.1:4317\"\nsampling_ratio = 0\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n";
        let config = crate::load_str(ok, "ok.toml").unwrap();
        assert!(config.raw().tracing.enabled);
    }

    #[test]
    fn endpoints_split_into_authority_and_path() {
        assert_eq!(
            split_endpoint("http://127.0.0.1:4318/v1/traces").ok(),
            Some(("127.0.0.1:4318".into(), "/v1/traces".into()))
        );
        assert_eq!(
            split_endpoint("http://collector").ok(),
            Some(("collector:80".into(), "/".into()))
        );
        assert_eq!(
            split_endpoint("http://[::1]:4317").ok(),
            Some(("[::1]:4317".into(), "/".into()))
        );
        for bad in [
            "https://x/v1",
            "x:4318",
            "http://",
            "http://a:b/",
            "http://a b/",
        ] {
            assert!(split_endpoint(bad).is_err(), "{bad}");
        }
    }
}
