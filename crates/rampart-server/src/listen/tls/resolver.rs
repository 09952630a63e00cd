//! Picking the certificate for a handshake by SNI name: exact names, then `*.wildcard` names
//! (one label), then the default. Each certificate sits in an `ArcSwap`, so reload replaces it
//! without touching handshakes in progress or established connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One configured certificate and the files it was loaded from.
#[derive(Debug)]
pub(crate) struct CertSlot {
    pub(crate) key: ArcSwap<CertifiedKey>,
    pub(crate) names: Arc<[Box<str>]>,
    pub(crate) cert_path: String,
    pub(crate) key_path: String,
    pub(crate) ocsp_path: Option<String>,
    pub(crate) not_after: AtomicI64,
}

/// SNI → certificate.
#[derive(Debug)]
pub(crate) struct SniResolver {
    exact: HashMap<Box<str>, usize>,
    wildcard: HashMap<Box<str>, usize>,
    default: Option<usize>,
    pub(crate) slots: Vec<CertSlot>,
}

impl SniResolver {
    /// Builds the lookup tables from `slots` (names are already validated and unique).
    pub(crate) fn new(slots: Vec<CertSlot>, default: Option<usize>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, slot) in slots.iter().enumerate() {
            for name in slot.names.iter() {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(suffix) => {
                        wildcard.entry(suffix.into()).or_insert(i);
                    }
                    None => {
                        exact.entry(name.into_boxed_str()).or_insert(i);
                    }
                }
            }
        }
        Self {
            exact,
            wildcard,
            default,
            slots,
        }
    }

    /// True when `name` is served by an exact (not wildcard) entry.
    pub(crate) fn has_exact(&self, name: &str) -> bool {
        self.exact.contains_key(name)
    }

    /// The slot serving `sni` (rustls hands it over lowercase and without a trailing dot).
    pub(crate) fn lookup(&self, sni: Option<&str>) -> Option<&CertSlot> {
        let index = sni
            .and_then(|name| {
                self.exact.get(name).copied().or_else(|| {
                    let (_, parent) = name.split_once('.')?;
                    self.wildcard.get(parent).copied()
                })
            })
            .or(self.default)?;
        self.slots.get(index)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name()).map(|s| s.key.load_full())
    }
}

impl CertSlot {
    /// Replaces the certificate in service.
    pub(crate) fn store(&self, key: Arc<CertifiedKey>, not_after: i64) {
        self.key.store(key);
        self.not_after.store(not_after, Ordering::Relaxed);
    }
}
