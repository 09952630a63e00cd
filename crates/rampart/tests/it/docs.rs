//! The docs as a reader meets them. Every Markdown table in docs/ and README.md renders as one
//! table (no blank line splits it). Every fenced TOML block in docs/ and README.md that is a
//! complete config passes `rampart check`: a block is complete when it has a `[[listeners]]`
//! table (Rampart refuses a config without one); blocks without a listener show one section
//! alone and are not checked. In a checked block, absolute file paths become files in a
//! temporary directory (certificates, keys and CRLs from a throw-away PKI, GeoIP databases
//! written for the test, other paths such as logs left to be created), and each `${VAR}` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::{MmdbWriter, TestPki, asn_record, country_record};

use crate::support::TempDir;

/// Bound on one `rampart check`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// The Markdown pages: README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.push(root.join("README.md"));
    pages
}

/// One fenced block: its info string, first line number (1-based) and text.
struct Fence {
    info: String,
    line: usize,
    text: String,
}

/// The lines outside fenced blocks (with their numbers) and the fenced blocks of `text`.
fn split(text: &str) -> (Vec<(usize, &str)>, Vec<Fence>) {
    let mut prose = Vec::new();
    let mut fences = Vec::new();
    let mut open: Option<Fence> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match open.take() {
                Some(fence) => fences.push(fence),
                None => {
                    open = Some(Fence {
                        info: info.trim().to_owned(),
                        line: i + 2,
                        text: String::new(),
                    });
                }
            }
        } else if let Some(fence) = &mut open {
            fence.text.push_str(line);
            fence.text.push('\n');
        } else {
            prose.push((i + 1, line));
        }
    }
    (prose, fences)
}

/// True for a table's delimiter row, such as `|---|:--:|`.
fn is_delimiter_row(line: &str) -> bool {
    let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
    !cells.is_empty()
        && cells.iter().all(|c| {
            let c = c.trim();
            !c.is_empty() && c.contains('-') && c.chars().all(|ch| matches!(ch, '-' | ':'))
        })
}

/// Every run of table rows in `prose` whose second row is not a delimiter row: rows a blank
/// line (or anything else) split off a table, which Markdown renders as text.
fn split_tables(prose: &[(usize, &str)]) -> Vec<usize> {
    let mut broken = Vec::new();
    let mut i = 0;
    while i < prose.len() {
        let is_row = |k: usize| {
            k < prose.len()
                && prose[k].0 == prose[i].0 + (k - i)
                && prose[k].1.trim_start().starts_with('|')
        };
        if !is_row(i) {
            i += 1;
            continue;
        }
        let mut end = i;
        while is_row(end + 1) {
            end += 1;
        }
        if end == i || !is_delimiter_row(prose[i + 1].1) {
            broken.push(prose[i].0);
        }
        i = end + 1;
    }
    broken
}

#[test]
fn every_markdown_table_is_one_table() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let (prose, _) = split(&text);
        for line in split_tables(&prose) {
            broken.push(format!("{}:{line}", page.display()));
        }
    }
    assert!(
        broken.is_empty(),
        "table rows without a header row (a blank line inside a table?): {broken:#?}"
    );
}

#[test]
fn the_table_check_finds_a_split_table() {
    let text = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n\nprose\n\n| c |\n|:-:|\n";
    let (prose, _) = split(text);
    assert_eq!(split_tables(&prose), vec![5]);
}

/// Files a checked block may name, made once for all blocks.
struct Placeholders {
    dir: TempDir,
    pki: TestPki,
    cert: String,
    key: String,
    crl: String,
    country_db: String,
    asn_db: String,
}

impl Placeholders {
    fn new() -> Self {
        let dir = TempDir::new("docs");
        let pki = TestPki::new();
        let server = pki.server("docs", &["example.com", "*.example.com"]);
        let crl = pki.crl("docs.crl.pem", &[]);
        let country_db = dir.0.join("country.mmdb");
        MmdbWriter::new("Rampart-Test-Country")
            .insert("203.0.113.0/24", country_record("DE"))
            .write_to(&country_db)
            .unwrap();
        let asn_db = dir.0.join("asn.mmdb");
        MmdbWriter::new("Rampart-Test-ASN")
            .insert("203.0.113.0/24", asn_record(64_500, "Example Net"))
            .write_to(&asn_db)
            .unwrap();
        Self {
            cert: server.cert,
            key: server.key,
            crl,
            country_db: country_db.display().to_string(),
            asn_db: asn_db.display().to_string(),
            pki,
            dir,
        }
    }

    /// The file standing in for the absolute path `path`.
    fn for_path(&self, path: &str) -> String {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        if name.ends_with(".key") {
            self.key.clone()
        } else if name.contains("crl") {
            self.crl.clone()
        } else if name.ends_with(".pem") && name.contains("ca") {
            self.pki.path("ca.pem")
        } else if name.ends_with(".crt") || name.ends_with(".pem") {
            self.cert.clone()
        } else if name.ends_with(".mmdb") && name.contains("asn") {
            self.asn_db.clone()
        } else if name.ends_with(".mmdb") {
            self.country_db.clone()
        } else {
            self.dir.0.join(name).display().to_string()
        }
    }

    /// `block` with each quoted absolute path replaced by its placeholder.
    fn substitute(&self, block: &str) -> String {
        let paths = regex::Regex::new(r#""(/[^"\s]+)""#).unwrap();
        paths
            .replace_all(block, |c: &regex::Captures<'_>| {
                format!("{:?}", self.for_path(&c[1]))
            })
            .into_owned()
    }
}

/// Runs `rampart check -c path` with `env`, bounded; returns (success, output).
fn rampart_check(path: &Path, env: &[(String, String)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["check", "-c"])
        .arg(path)
        .env_remove("RUST_LOG")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + CHECK_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("no answer within {CHECK_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_complete_toml_config_in_the_docs_passes_rampart_check() {
    let placeholders = Placeholders::new();
    let vars = regex::Regex::new(r"\$\{([A-Z0-9_]+)").unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let (_, fences) = split(&text);
        for fence in fences {
            if fence.info.split_whitespace().next() != Some("toml")
                || !fence.text.contains("[[listeners]]")
            {
                continue;
            }
            checked += 1;
            let config = placeholders.substitute(&fence.text);
            let env: Vec<(String, String)> = vars
                .captures_iter(&config)
                .map(|c| {
                    (
                        c[1].to_owned(),
                        "placeholder-value-0123456789abcdef".to_owned(),
                    )
                })
                .collect();
            let path = placeholders
                .dir
                .file(&format!("block-{checked}.toml"), &config);
            let (ok, output) = rampart_check(&path, &env);
            if !ok {
                failures.push(format!(
                    "{}:{}:\n{config}\n{output}",
                    page.display(),
                    fence.line
                ));
            }
        }
    }
    assert!(checked >= 5, "only {checked} complete configs found");
    assert!(
        failures.is_empty(),
        "{} docs configs fail `rampart check`:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}
