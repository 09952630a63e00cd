//! Building and running the data plane: compiling a config into the runtime snapshot (edge and
//! plane, routes with their stages, upstream sets), what a reload keeps, starting workers and
//! listeners, hot reload and the config watch, `rampart explain`, and the handle the admin API
//! uses. The top room: it builds all the others, and nothing below imports it.

pub(crate) mod compile;
pub(crate) mod config_watch;
pub(crate) mod control;
pub(crate) mod explain;
pub(crate) mod handle;
mod listeners;
mod reuse;
mod routes;
pub(crate) mod server;
pub(crate) mod status;
pub(crate) mod worker;
