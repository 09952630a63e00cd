//! Rampart's shared HTTP cache (RFC 9111), as a stage of the pipeline: [`CacheStages`] builds
//! the `cache` stage of every route that turns it on, over one [`CacheStore`] per config.
//!
//! On the request side the stage answers `GET` and `HEAD` from a stored object when it may be
//! reused (fresh, allowed stale, or stale while a background request refreshes it), answers
//! the client's conditionals from it (304 / 412), or sends the request on, with the object's
//! validators when it has some, after the request already in flight for the same object.
//! On the response side it refreshes objects from 304s, stands in stale objects for failed
//! upstreams (`stale-if-error`), copies storable responses into the store as they stream,
//! and invalidates what successful unsafe methods change. `PURGE` and the admin API remove
//! objects by key, prefix or `Surrogate-Key`.
//!
//! It depends on `rampart-core` (the Stage API) and `rampart-config`, never on the server.

#![forbid(unsafe_code)]

mod conditional;
mod directives;
mod entry;
mod factory;
mod flight;
mod respond;
mod rules;
mod stage;
mod store;
mod tee;

pub use factory::CacheStages;
pub use stage::CacheStage;
pub use store::{CacheCounters, CacheStore, Purge};
