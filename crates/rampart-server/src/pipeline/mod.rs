//! The request pipeline: every request from every protocol, once its front end has turned it
//! into the one request type, goes through [`request::handle`]: identity, gates, routing, the
//! route's stages in each phase of the Stage API, the handler (proxy, redirect, fixed
//! response, echo; upgrades become tunnels), and finishing with metrics and the access log.
//!
//! Imports only `observe` among the rooms; `http` (and later `h3`) and `listen` call into it.

pub(crate) mod behind;
pub(crate) mod checks;
pub(crate) mod client_body;
pub(crate) mod finish;
pub(crate) mod gates;
pub(crate) mod handler;
pub(crate) mod normalize;
pub(crate) mod plane;
pub(crate) mod request;
pub(crate) mod route_run;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod stages;
pub(crate) mod tunnel;
