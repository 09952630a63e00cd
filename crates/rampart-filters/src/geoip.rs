//! GeoIP lookups in MaxMind DB files: the client's country (`country.iso_code`, falling back to
//! `registered_country.iso_code`) and autonomous system (`autonomous_system_number`).
//!
//! The files are read into memory once when the config is compiled; a lookup walks the
//! in-memory search tree and decodes a borrowed string or an integer, without allocating.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};
use rampart_core::CountryCode;

/// The configured databases.
#[derive(Debug, Default)]
pub struct GeoIp {
    country: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

const COUNTRY: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];
const REGISTERED: [PathElement<'static>; 2] = [
    PathElement::Key("registered_country"),
    PathElement::Key("iso_code"),
];
const ASN: [PathElement<'static>; 1] = [PathElement::Key("autonomous_system_number")];

impl GeoIp {
    /// Opens the databases that are configured.
    ///
    /// # Errors
    /// A file that cannot be read or is not a valid MaxMind DB; the message names which.
    pub fn open(country_db: Option<&Path>, asn_db: Option<&Path>) -> Result<Self, String> {
        let open = |path: &Path| {
            Reader::open_readfile(path)
                .map_err(|e| format!("cannot open MaxMind DB {}: {e}", path.display()))
        };
        Ok(Self {
            country: country_db.map(open).transpose()?,
            asn: asn_db.map(open).transpose()?,
        })
    }

    /// True when a country database is configured.
    #[must_use]
    pub const fn has_country(&self) -> bool {
        self.country.is_some()
    }

    /// The country of `ip`, when the country database knows it.
    #[must_use]
    pub fn country(&self, ip: IpAddr) -> Option<CountryCode> {
        let result = self.country.as_ref()?.lookup(ip).ok()?;
        let code = match result.decode_path::<&str>(&COUNTRY) {
            Ok(Some(code)) => code,
            _ => result.decode_path::<&str>(&REGISTERED).ok()??,
        };
        CountryCode::parse(code)
    }

    /// The autonomous system number of `ip`, when the ASN database knows it.
    #[must_use]
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let result = self.asn.as_ref()?.lookup(ip).ok()?;
        result.decode_path::<u32>(&ASN).ok()?
    }
}
