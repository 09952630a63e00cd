//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off in the product
//! build; also compiled for this crate's tests, which replay the seed corpora). Each takes the
//! fuzzer's bytes, runs one of the data plane's parsers over them, and panics when the parser
//! panics or when one of its properties does not hold.

pub use crate::http::fuzzing::{request_head, stream_scan};

use crate::listen::tls::client_hello::{self, Sni};
use crate::pipeline::normalize::normalize_path;

/// Path normalization: a normalized path is absolute (or `*`), has no `.` or `..` segment and
/// no percent-encoding of an unreserved character, its other percent-encodings are upper-case
/// and not NUL, and normalizing it again changes nothing. A path with neither `%` nor a dot
/// segment comes back as it was.
pub fn path_normalize(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let normal = match normalize_path(path) {
        Ok(normal) => normal,
        Err(e) => {
            assert!(!e.detail().is_empty());
            return;
        }
    };
    assert!(normal.starts_with('/') || normal == "*", "{normal:?}");
    assert!(
        !normal.split('/').any(|s| s == "." || s == ".."),
        "dot segment left in {normal:?}"
    );
    let bytes = normal.as_bytes();
    for (at, _) in normal.match_indices('%') {
        let hex = bytes.get(at + 1..at + 3).unwrap_or_default();
        assert!(
            hex.len() == 2 && hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')),
            "bad escape at {at} in {normal:?}"
        );
        let value = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("00"), 16).unwrap_or(0);
        assert!(
            value != 0 && !(value.is_ascii_alphanumeric() || b"-._~".contains(&value)),
            "%{value:02X} left encoded in {normal:?}"
        );
    }
    match normalize_path(&normal) {
        Ok(again) => assert_eq!(again, normal, "normalizing twice changes {path:?}"),
        Err(e) => panic!("normalized {path:?} to {normal:?}, which is refused: {e:?}"),
    }
    let dotted = path.split('/').any(|s| s == "." || s == "..");
    if !path.contains('%') && !dotted {
        assert_eq!(
            normal, path,
            "a path without escapes or dot segments changed"
        );
    }
}

/// What rustls makes of the same bytes: `Some(name)` once it has read a ClientHello (`name`
/// as `server_name` reports it), `None` when it refuses them or needs more.
fn rustls_server_name(data: &[u8]) -> Option<Option<String>> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = data;
    // Each round reads at least one byte or stops, so this is bounded by the input.
    for _ in 0..=data.len() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                return Some(accepted.client_hello().server_name().map(str::to_owned));
            }
            Ok(None) => {}
            Err(_) => return None,
        }
    }
    None
}

/// The SNI reader for TLS passthrough, against rustls' own ClientHello parser on the same
/// bytes: when rustls reads a ClientHello with a host name, the reader finds that name (lower
/// case, without a trailing dot); when rustls reads one at all, the reader does not ask for
/// more bytes. A name the reader returns is a plausible host name.
pub fn client_hello_sni(data: &[u8]) {
    let ours = client_hello::parse_sni(data);
    if let Sni::Name(name) = &ours {
        assert!(!name.is_empty() && name.len() <= 253, "{name:?}");
        assert!(!name.ends_with('.'), "{name:?}");
        assert_eq!(*name, name.to_ascii_lowercase());
    }
    match rustls_server_name(data) {
        Some(Some(name)) => {
            let name = name.strip_suffix('.').unwrap_or(&name).to_ascii_lowercase();
            assert_eq!(ours, Sni::Name(name), "rustls reads another name");
        }
        Some(None) => assert_ne!(ours, Sni::Incomplete, "rustls read a whole ClientHello"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Runs `check` over every file of the seed corpus `fuzz/corpus/<target>`.
    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            check(&std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")));
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn the_request_head_corpus_passes() {
        replay("request_head", super::request_head);
    }

    #[test]
    fn the_stream_scan_corpus_passes() {
        replay("stream_scan", super::stream_scan);
    }

    #[test]
    fn the_path_normalize_corpus_passes() {
        replay("path_normalize", super::path_normalize);
    }

    #[test]
    fn the_client_hello_sni_corpus_passes() {
        replay("client_hello_sni", super::client_hello_sni);
    }

    /// The first flight of a rustls client connecting to `name`.
    fn rustls_client_hello(name: &str) -> Vec<u8> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls_pki_types::ServerName::try_from(name.to_owned())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap_or_else(|e| panic!("{e}"));
        }
        out
    }

    #[test]
    fn the_sni_reader_finds_the_name_in_rustls_client_hellos() {
        for name in [
            "example.com",
            "API.Example.COM",
            "a-b.c_d.example",
            "192.0.2.1",
        ] {
            let hello = rustls_client_hello(name);
            super::client_hello_sni(&hello);
            let expected = match name {
                "192.0.2.1" => super::Sni::None,
                _ => super::Sni::Name(name.to_ascii_lowercase()),
            };
            assert_eq!(super::client_hello::parse_sni(&hello), expected, "{name}");
            if let Some(dir) = std::env::var_os("RAMPART_WRITE_SEEDS") {
                let file = Path::new(&dir).join(format!("rustls-{name}"));
                std::fs::write(file, &hello).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}
