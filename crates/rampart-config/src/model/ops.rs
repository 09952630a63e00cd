//! Operations sections: `[admin]` (the admin API listener) and `[reload]` (how config changes
//! are picked up while running).

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::HumanDuration;

/// `[admin]`: the admin API (status, routes, upstreams, config, reload, drain, metrics) on its
/// own listener. Present in the file means served; `enabled = false` turns it off again.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Serve the admin API.
    pub enabled: bool,
    /// Address of the admin listener; keep it on loopback or a management network.
    pub listen: Located<SocketAddr>,
    /// Bearer token every admin request must present (`Authorization: Bearer ...`); use
    /// `${VAR}` to keep it out of the file. Empty or absent: no token is asked for.
    pub token: Option<Located<String>>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: Located::new(SocketAddr::from(([127, 0, 0, 1], 9901))),
            token: None,
        }
    }
}

/// `[reload]`: picking up config changes without a restart.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSection {
    /// Reload when the config file changes on disk (SIGHUP and `POST /reload` always work).
    pub watch: bool,
    /// Quiet time after the last change before the file is read (editors write in steps).
    pub debounce: HumanDuration,
}

impl Default for ReloadSection {
    fn default() -> Self {
        Self {
            watch: false,
            debounce: HumanDuration::millis(500),
        }
    }
}
