//! `rampart doctor`: checks the machine and a config before Rampart runs on it — file
//! descriptor limit against the connection caps, listen ports free, certificates valid and
//! complete, upstreams resolvable and reachable, kernel network settings — and prints each
//! finding with its severity and how to fix it.
//!
//! Exit code: 0 when nothing is worse than `info`, 2 when the worst finding is a `warning`,
//! 1 when there is an `error` (the config does not load, a port is taken, a certificate has
//! expired…).

mod certs;
mod network;
mod system;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use rampart_config::Config;
use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// Checked and fine.
    Ok,
    /// Worth knowing, nothing to fix.
    Info,
    /// Rampart runs, but something will hurt under load or soon.
    Warning,
    /// Rampart will not start or will not work as configured.
    Error,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One result of one check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    /// Which check: `config`, `fd_limit`, `port`, `certificate`, `upstream`, `kernel`.
    pub(crate) check: &'static str,
    /// How bad it is.
    pub(crate) severity: Severity,
    /// What was checked (a listener, a file, a target, a sysctl).
    pub(crate) subject: String,
    /// What was found.
    pub(crate) message: String,
    /// How to fix it, when there is something to fix.
    pub(crate) fix: Option<String>,
}

impl Finding {
    pub(crate) fn new(
        check: &'static str,
        severity: Severity,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            check,
            severity,
            subject: subject.into(),
            message: message.into(),
            fix: None,
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

#[derive(Serialize)]
struct Report<'a> {
    config: String,
    worst: Severity,
    exit_code: u8,
    findings: &'a [Finding],
}

/// Runs every check on the config at `path` and prints the findings as text or JSON.
pub(crate) fn run(path: &Path, json: bool) -> ExitCode {
    let findings = match rampart_config::load_file(path) {
        Ok(config) => check_all(&config),
        Err(d) => vec![
            Finding::new(
                "config",
                Severity::Error,
                path.display().to_string(),
                d.to_string(),
            )
            .fix("correct the config; `rampart check -c FILE` shows the same errors"),
        ],
    };
    let worst = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok);
    let code = exit_code(worst);
    if json {
        let report = Report {
            config: path.display().to_string(),
            worst,
            exit_code: code,
            findings: &findings,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", text(&findings, worst));
    }
    ExitCode::from(code)
}

/// 0: nothing worse than info; 2: warnings; 1: errors.
fn exit_code(worst: Severity) -> u8 {
    match worst {
        Severity::Ok | Severity::Info => 0,
        Severity::Warning => 2,
        Severity::Error => 1,
    }
}

fn check_all(config: &Config) -> Vec<Finding> {
    let raw = config.raw();
    let mut findings = Vec::new();
    match rampart_server::compile(config) {
        Ok(_) => findings.push(Finding::new(
            "config",
            Severity::Ok,
            config.source().origin.clone(),
            "parses, validates and compiles",
        )),
        Err(d) => findings.push(
            Finding::new(
                "config",
                Severity::Error,
                config.source().origin.clone(),
                d.to_string(),
            )
            .fix("correct the config; the findings below say more about files and ports"),
        ),
    }
    findings.extend(system::fd_limit(raw));
    findings.extend(system::kernel(raw));
    findings.extend(network::ports(raw));
    findings.extend(certs::check(raw));
    findings.extend(network::upstreams(raw));
    findings
}

fn text(findings: &[Finding], worst: Severity) -> String {
    let mut out = String::new();
    for f in findings {
        // `upstream app target …` already says which check it is; `fd_limit` reads `fd limit`.
        let check = f.check.replace('_', " ");
        let what = if f.subject.contains(&check) {
            f.subject.clone()
        } else {
            format!("{check} {}", f.subject)
        };
        let _ = writeln!(out, "[{:<7}] {what}: {}", f.severity.label(), f.message);
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "          fix: {fix}");
        }
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "\n{} errors, {} warnings, {} info, {} ok: {}",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
        count(Severity::Ok),
        match worst {
            Severity::Error => "Rampart will not start or work as configured",
            Severity::Warning => "Rampart can run; fix the warnings before production load",
            _ => "ready",
        }
    );
    out
}
