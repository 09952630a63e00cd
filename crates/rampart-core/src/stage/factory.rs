//! [`StageFactory`]: how a feature turns config into stages. The pipeline keeps an ordered list
//! of factories (one line per feature); compiling a config asks each factory, in that order,
//! for the stages of every route. Startup, `rampart check`, `rampart explain` and reload all
//! go through the same factories.

use std::any::Any;
use std::sync::Arc;

use rampart_config::model::Route;
use rampart_config::{Config, ConfigError};

use super::Stage;

/// What a factory needs to build one route's stages.
#[derive(Clone, Copy)]
pub struct RouteSpec<'a> {
    /// The whole config (process-wide defaults, other sections).
    pub config: &'a Config,
    /// The route being built.
    pub route: &'a Route,
    /// The route's config path for error messages, such as `routes[3]`.
    pub path: &'a str,
}

impl RouteSpec<'_> {
    /// A config error at `key` of this route (`routes[3].cors`), pointing at the route's name
    /// when `span` is not given.
    #[must_use]
    pub fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let span = span.unwrap_or_else(|| self.route.name.span());
        ConfigError::new(Some(span), format!("{}.{key}", self.path), message.into())
    }
}

/// What a factory compiled once per config (shared state such as rate-limit policies or a
/// cache's storage), handed to [`StageFactory::build`] for every route and, on reload, back
/// to [`StageFactory::prepare`] so that state whose config did not change can be kept.
#[derive(Clone, Default)]
pub struct Prepared(Option<Arc<dyn Any + Send + Sync>>);

impl Prepared {
    /// Wraps a factory's compiled state.
    #[must_use]
    pub fn new<T: Any + Send + Sync>(state: T) -> Self {
        Self(Some(Arc::new(state)))
    }

    /// The state, when it is a `T` (a factory reads back only what it prepared itself).
    #[must_use]
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|state| state.downcast_ref())
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Prepared(..)"
        } else {
            "Prepared(none)"
        })
    }
}

/// The config in service and what this factory prepared for it, given to
/// [`StageFactory::prepare`] on reload.
#[derive(Clone, Copy)]
pub struct Previous<'a> {
    /// The config being replaced.
    pub config: &'a Config,
    /// What this factory prepared for it.
    pub prepared: &'a Prepared,
}

/// Builds one kind of stage from the config. Implemented by each feature (a module of
/// `rampart-filters`, or a feature crate) and listed once in the pipeline's registry, whose
/// order is the order of the stages on every route.
pub trait StageFactory: Send + Sync + 'static {
    /// The feature's name (for errors and `rampart explain`).
    fn name(&self) -> &'static str;

    /// Compiles config-wide state once per config. `previous` is set on reload; keep its
    /// state where the relevant config did not change. The default prepares nothing.
    ///
    /// # Errors
    /// Config the feature cannot use, with spans.
    fn prepare(
        &self,
        _config: &Config,
        _previous: Option<Previous<'_>>,
    ) -> Result<Prepared, Vec<ConfigError>> {
        Ok(Prepared::default())
    }

    /// The stages this feature adds to `route`, in order (none when the route does not use
    /// it).
    ///
    /// # Errors
    /// Config the feature cannot use, with spans.
    fn build(
        &self,
        route: &RouteSpec<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>>;
}
