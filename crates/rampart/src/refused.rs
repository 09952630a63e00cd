//! [`Refused`]: the error a refused config becomes, for every command that loads or compiles
//! one (`run`, `check`, `explain`, `proxy`).

use rampart_config::Diagnostics;

/// A config problem is printed as the diagnostics themselves, not wrapped in another message.
pub(crate) struct Refused(pub(crate) Diagnostics);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config refused:\n{}", self.0)
    }
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Refused {}
