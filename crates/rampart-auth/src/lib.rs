//! Authentication at the edge, as a stage of the Stage API: `[auth]` providers (JWT with keys
//! from a PEM file, a secret or a JWKS URL; API keys by SHA-256;
//! Basic with htpasswd files) compiled once per config, and on each
//! route with an `auth` table an [`AuthStage`] that turns the request's credentials into a
//! [`rampart_core::Principal`] in the request context, or refuses it (401, 403, 503).
//!
//! Depends on `rampart-core` and `rampart-config` only, never on the server. A route without
//! `auth` gets no stage, so it pays nothing.

#![forbid(unsafe_code)]

mod apikey;
mod basic;
mod cache;
mod claims;
mod factory;
mod fetch;
mod jwt;
mod stage;
mod token;

pub use factory::{AuthProviders, AuthStages};
pub use stage::AuthStage;
