//! [`CacheStages`]: the store, prepared once per config (kept over a reload while
//! `cache.max_size` is unchanged), and the `cache` stage of each route that turns it on.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use rampart_config::model::{CacheRules, CacheSection};
use rampart_config::{Config, ConfigError, Located};
use rampart_core::{Prepared, Previous, RouteSpec, Stage, StageFactory};

use crate::entry::Defaults;
use crate::rules::{IgnoreQuery, Rules};
use crate::stage::CacheStage;
use crate::store::CacheStore;

/// Largest `max_object_size`: an object's weight must fit the store's counters.
const MAX_OBJECT_SIZE: u64 = 1 << 30;

/// Builds the `cache` stage of routes with `cache` on, over one shared store.
#[derive(Debug, Clone, Copy)]
pub struct CacheStages;

impl StageFactory for CacheStages {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn prepare(
        &self,
        config: &Config,
        previous: Option<Previous<'_>>,
    ) -> Result<Prepared, Vec<ConfigError>> {
        let raw = config.raw();
        if !raw
            .routes
            .iter()
            .any(|r| r.cache.as_ref().is_some_and(|c| c.enabled))
        {
            return Ok(Prepared::default());
        }
        let section = &raw.cache;
        check_section(section)?;
        let max_size = section.max_size.get().get();
        let kept = previous
            .and_then(|p| p.prepared.get::<CacheStore>())
            .filter(|store| store.max_size() == max_size)
            .cloned();
        Ok(Prepared::new(
            kept.unwrap_or_else(|| CacheStore::new(max_size)),
        ))
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(cache) = route.route.cache.as_ref().filter(|c| c.enabled) else {
            return Ok(Vec::new());
        };
        let Some(store) = prepared.get::<CacheStore>() else {
            return Err(vec![route.error(
                None,
                "cache",
                "the cache store is not prepared",
            )]);
        };
        let rules = compile(route, &cache.rules, &route.config.raw().cache, store)?;
        Ok(vec![Box::new(CacheStage {
            store: store.clone(),
            rules: Arc::new(rules),
        })])
    }
}

fn check_section(section: &CacheSection) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    if section.max_size.get().get() < 1 << 20 {
        errors.push(ConfigError::new(
            Some(section.max_size.span()),
            "cache.max_size",
            "must be at least 1MiB",
        ));
    }
    let name = section.status_header.get();
    if !name.is_empty() && HeaderName::from_bytes(name.as_bytes()).is_err() {
        errors.push(ConfigError::new(
            Some(section.status_header.span()),
            "cache.status_header",
            format!("{name:?} is not a header name"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn seconds(value: Option<&Located<rampart_config::HumanDuration>>) -> u64 {
    value.map_or(0, |d| d.get().get().as_secs())
}

/// Header names, each checked.
fn header_names(
    route: &RouteSpec<'_>,
    key: &str,
    names: &[Located<String>],
    errors: &mut Vec<ConfigError>,
) -> Box<[HeaderName]> {
    names
        .iter()
        .filter_map(|n| match HeaderName::from_bytes(n.as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                errors.push(route.error(
                    Some(n.span()),
                    &format!("cache.{key}"),
                    format!("{:?} is not a header name", n.get()),
                ));
                None
            }
        })
        .collect()
}

fn strings(values: &[Located<String>]) -> Box<[Box<str>]> {
    values.iter().map(|v| Box::from(v.as_str())).collect()
}

fn compile(
    route: &RouteSpec<'_>,
    rules: &CacheRules,
    section: &CacheSection,
    store: &CacheStore,
) -> Result<Rules, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let max_object_size = rules.max_object_size.get().get();
    if max_object_size == 0 || max_object_size > MAX_OBJECT_SIZE.min(store.max_size()) {
        errors.push(route.error(
            Some(rules.max_object_size.span()),
            "cache.max_object_size",
            "must be more than 0 and at most cache.max_size (and 1GiB)",
        ));
    }
    for status in &rules.statuses {
        if !(200..=599).contains(status.get()) || *status.get() == 206 || *status.get() == 304 {
            errors.push(route.error(
                Some(status.span()),
                "cache.statuses",
                format!(
                    "{} cannot be stored: a final status from 200 to 599, not 206 or 304",
                    status.get()
                ),
            ));
        }
    }
    for path in &rules.exclude_paths {
        if !path.starts_with('/') {
            errors.push(route.error(
                Some(path.span()),
                "cache.exclude_paths",
                format!("{:?} must start with /", path.get()),
            ));
        }
    }
    if rules.collapse_timeout.get().get().is_zero() {
        errors.push(route.error(
            Some(rules.collapse_timeout.span()),
            "cache.collapse_timeout",
            "must be more than 0 (set collapse = false to turn collapsing off)",
        ));
    }
    let key_headers = header_names(route, "key_headers", &rules.key_headers, &mut errors);
    let bypass_headers = header_names(route, "bypass_headers", &rules.bypass_headers, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let ignore_query = if rules.ignore_query.iter().any(|q| q.as_str() == "*") {
        IgnoreQuery::All
    } else if rules.ignore_query.is_empty() {
        IgnoreQuery::None
    } else {
        IgnoreQuery::Names(strings(&rules.ignore_query))
    };
    let status_header = section.status_header.get();
    Ok(Rules {
        defaults: Defaults {
            ttl: rules.default_ttl.as_ref().map(|d| d.get().get().as_secs()),
            stale_while_revalidate: seconds(rules.stale_while_revalidate.as_ref()),
            stale_if_error: seconds(rules.stale_if_error.as_ref()),
        },
        max_object_size,
        statuses: (!rules.statuses.is_empty())
            .then(|| rules.statuses.iter().map(|s| *s.get()).collect()),
        key_headers,
        key_cookies: strings(&rules.key_cookies),
        ignore_query,
        bypass_headers,
        bypass_cookies: strings(&rules.bypass_cookies),
        exclude_extensions: rules
            .exclude_extensions
            .iter()
            .map(|e| Box::from(e.trim_start_matches('.').to_ascii_lowercase()))
            .collect(),
        exclude_paths: strings(&rules.exclude_paths),
        collapse: rules
            .collapse
            .then(|| rules.collapse_timeout.get().get())
            .filter(|d| *d > Duration::ZERO),
        status_header: (!status_header.is_empty())
            .then(|| HeaderName::from_bytes(status_header.as_bytes()).ok())
            .flatten(),
        purge_allow: section.purge_allow.iter().map(|c| *c.get()).collect(),
    })
}
