//! [`MmdbWriter`]: writes small MaxMind DB files (format 2.0) for GeoIP tests, so no database
//! has to be downloaded.
//!
//! The tree is an IPv6 tree with 24-bit records; IPv4 networks live under `::/96`, where
//! readers look them up. Networks must not overlap. Records are maps of strings, unsigned
//! integers and nested maps, which is all the country and ASN lookups need.

use std::io;
use std::net::IpAddr;
use std::path::Path;

/// A value stored in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MmdbValue {
    /// A UTF-8 string.
    Str(String),
    /// An unsigned 32-bit integer.
    U32(u32),
    /// A map with string keys.
    Map(Vec<(String, MmdbValue)>),
}

/// A GeoIP2-Country style record: `{"country": {"iso_code": iso}}`.
#[must_use]
pub fn country_record(iso: &str) -> MmdbValue {
    MmdbValue::Map(vec![(
        "country".to_owned(),
        MmdbValue::Map(vec![(
            "iso_code".to_owned(),
            MmdbValue::Str(iso.to_owned()),
        )]),
    )])
}

/// A GeoLite2-ASN style record.
#[must_use]
pub fn asn_record(asn: u32, organization: &str) -> MmdbValue {
    MmdbValue::Map(vec![
        ("autonomous_system_number".to_owned(), MmdbValue::U32(asn)),
        (
            "autonomous_system_organization".to_owned(),
            MmdbValue::Str(organization.to_owned()),
        ),
    ])
}

/// Builds a MaxMind DB file in memory.
#[derive(Debug, Clone)]
pub struct MmdbWriter {
    database_type: String,
    networks: Vec<(u128, u8, MmdbValue)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Empty,
    Node(u32),
    Data(usize),
}

impl MmdbWriter {
    /// An empty database of `database_type` (such as `GeoLite2-Country`).
    #[must_use]
    pub fn new(database_type: &str) -> Self {
        Self {
            database_type: database_type.to_owned(),
            networks: Vec::new(),
        }
    }

    /// Adds `network` (`"192.0.2.0/24"`, `"2001:db8::/32"`, or an address) with `value`.
    ///
    /// # Panics
    /// On a malformed network or a prefix of 0 (test input is the caller's).
    #[must_use]
    pub fn insert(mut self, network: &str, value: MmdbValue) -> Self {
        let (addr, prefix) = network.split_once('/').unwrap_or((network, ""));
        let addr: IpAddr = addr.parse().unwrap_or_else(|e| panic!("{network}: {e}"));
        let (bits, prefix) = match addr {
            IpAddr::V4(v4) => {
                let p: u8 = if prefix.is_empty() {
                    32
                } else {
                    prefix.parse().unwrap_or(255)
                };
                assert!((1..=32).contains(&p), "{network}: bad prefix");
                (u128::from(u32::from(v4)), 96 + p)
            }
            IpAddr::V6(v6) => {
                let p: u8 = if prefix.is_empty() {
                    128
                } else {
                    prefix.parse().unwrap_or(255)
                };
                assert!((1..=128).contains(&p), "{network}: bad prefix");
                (u128::from(v6), p)
            }
        };
        self.networks.push((bits, prefix, value));
        self
    }

    /// The file's bytes.
    ///
    /// # Panics
    /// When networks overlap.
    #[must_use]
    pub fn build(&self) -> Vec<u8> {
        let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
        for (index, (bits, prefix, _)) in self.networks.iter().enumerate() {
            let mut node = 0usize;
            for depth in 0..*prefix {
                let bit = usize::from((bits >> (127 - u32::from(depth))) & 1 == 1);
                if depth + 1 == *prefix {
                    assert_eq!(nodes[node][bit], Record::Empty, "overlapping networks");
                    nodes[node][bit] = Record::Data(index);
                    break;
                }
                node = match nodes[node][bit] {
                    Record::Node(n) => n as usize,
                    Record::Empty => {
                        let n = nodes.len();
                        nodes.push([Record::Empty; 2]);
                        nodes[node][bit] = Record::Node(u32::try_from(n).unwrap_or(u32::MAX));
                        n
                    }
                    Record::Data(_) => panic!("overlapping networks"),
                };
            }
        }
        let node_count = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
        assert!(node_count < 1 << 24, "too many nodes for 24-bit records");
        let mut data = Vec::new();
        let offsets: Vec<usize> = self
            .networks
            .iter()
            .map(|(_, _, value)| {
                let at = data.len();
                encode(&mut data, value);
                at
            })
            .collect();
        let mut out = Vec::with_capacity(nodes.len() * 6 + 16 + data.len() + 256);
        for pair in &nodes {
            for record in pair {
                let value = match record {
                    Record::Empty => node_count,
                    Record::Node(n) => *n,
                    Record::Data(i) => {
                        node_count + 16 + u32::try_from(offsets[*i]).unwrap_or(u32::MAX)
                    }
                };
                out.extend_from_slice(&value.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        encode_metadata(&mut out, node_count, &self.database_type);
        out
    }

    /// Writes the file to `path`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.build())
    }
}

fn encode_metadata(out: &mut Vec<u8>, node_count: u32, database_type: &str) {
    control(out, 7, 9);
    let field = |out: &mut Vec<u8>, key: &str| string(out, key);
    field(out, "node_count");
    uint(out, 6, u64::from(node_count));
    field(out, "record_size");
    uint(out, 5, 24);
    field(out, "ip_version");
    uint(out, 5, 6);
    field(out, "database_type");
    string(out, database_type);
    field(out, "languages");
    control(out, 11, 1);
    string(out, "en");
    field(out, "binary_format_major_version");
    uint(out, 5, 2);
    field(out, "binary_format_minor_version");
    uint(out, 5, 0);
    field(out, "build_epoch");
    uint(out, 9, 1_700_000_000);
    field(out, "description");
    control(out, 7, 1);
    string(out, "en");
    string(out, "Rampart test database");
}

fn encode(out: &mut Vec<u8>, value: &MmdbValue) {
    match value {
        MmdbValue::Str(s) => string(out, s),
        MmdbValue::U32(n) => uint(out, 6, u64::from(*n)),
        MmdbValue::Map(entries) => {
            control(out, 7, entries.len());
            for (k, v) in entries {
                string(out, k);
                encode(out, v);
            }
        }
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    control(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// An unsigned integer of `type_id` (5: uint16, 6: uint32, 9: uint64) in minimal bytes.
fn uint(out: &mut Vec<u8>, type_id: u8, n: u64) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, type_id, bytes.len() - skip);
    out.extend_from_slice(&bytes[skip..]);
}

/// A control byte for `type_id` and `size`, with the extended-type and size bytes it needs.
fn control(out: &mut Vec<u8>, type_id: u8, size: usize) {
    let (first, extra): (u8, Vec<u8>) = if size < 29 {
        (u8::try_from(size).unwrap_or(0), Vec::new())
    } else if size < 29 + 256 {
        (29, vec![u8::try_from(size - 29).unwrap_or(0)])
    } else if size < 285 + 65_536 {
        (
            30,
            u16::try_from(size - 285)
                .unwrap_or(0)
                .to_be_bytes()
                .to_vec(),
        )
    } else {
        (
            31,
            u32::try_from(size - 65_821).unwrap_or(0).to_be_bytes()[1..].to_vec(),
        )
    };
    if type_id <= 7 {
        out.push(type_id << 5 | first);
    } else {
        out.push(first);
        out.push(type_id - 7);
    }
    out.extend_from_slice(&extra);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use maxminddb::{PathElement, Reader};

    use super::*;

    #[test]
    fn the_maxminddb_reader_finds_what_was_written() {
        let mut writer = MmdbWriter::new("Rampart-Test")
            .insert("192.0.2.0/24", country_record("DE"))
            .insert("198.51.100.7", country_record("FR"))
            .insert("2001:db8::/32", country_record("JP"));
        for i in 0..40u32 {
            writer = writer.insert(
                &format!("10.{i}.0.0/16"),
                asn_record(64_500 + i, &"x".repeat(40)),
            );
        }
        let reader = Reader::from_source(writer.build()).unwrap();
        reader.verify().unwrap();
        let country = |ip: &str| -> Option<String> {
            let r = reader.lookup(ip.parse().unwrap()).unwrap();
            r.decode_path::<String>(&[PathElement::Key("country"), PathElement::Key("iso_code")])
                .unwrap()
        };
        assert_eq!(country("192.0.2.200").as_deref(), Some("DE"));
        assert_eq!(country("198.51.100.7").as_deref(), Some("FR"));
        assert_eq!(country("198.51.100.8"), None);
        assert_eq!(country("2001:db8:1::1").as_deref(), Some("JP"));
        assert_eq!(country("::1"), None);
        let r = reader.lookup("10.39.1.1".parse().unwrap()).unwrap();
        let asn: Option<u32> = r
            .decode_path(&[PathElement::Key("autonomous_system_number")])
            .unwrap();
        assert_eq!(asn, Some(64_539));
    }
}
