//! Request rewrites before forwarding: the path (strip prefix, replace prefix, regex replace
//! with captures) and the `Host` header.

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Uri};
use rampart_config::ConfigError;
use rampart_config::Pattern;
use rampart_config::model::Rewrite;
use rampart_core::{Body, ErrorKind, Flow, Phases, ProxyError, RequestCtx, Stage, StageFuture};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// How a path is rewritten.
#[derive(Debug)]
pub enum PathRewrite {
    /// Remove a leading path (on a segment boundary): `/api/users` → `/users`.
    StripPrefix(String),
    /// Replace a leading path (on a segment boundary) with another.
    ReplacePrefix {
        /// Leading path to replace.
        from: String,
        /// What to put instead.
        to: String,
    },
    /// Replace the first match of a regex, with `$1`/`${name}` captures.
    Regex {
        /// Pattern searched in the path.
        pattern: Pattern,
        /// Replacement text.
        replace: String,
    },
}

impl PathRewrite {
    /// The rewritten path, or `None` when the rule does not apply to `path`.
    #[must_use]
    pub fn apply(&self, path: &str) -> Option<String> {
        match self {
            Self::StripPrefix(prefix) => {
                let rest = strip_segment_prefix(path, prefix)?;
                Some(if rest.starts_with('/') {
                    rest.to_owned()
                } else {
                    format!("/{rest}")
                })
            }
            Self::ReplacePrefix { from, to } => {
                let rest = strip_segment_prefix(path, from)?;
                let to = to.trim_end_matches('/');
                let joined = match (to.is_empty(), rest.is_empty() || rest.starts_with('/')) {
                    (true, _) if rest.is_empty() => "/".to_owned(),
                    (_, true) => format!("{to}{rest}"),
                    (_, false) => format!("{to}/{rest}"),
                };
                Some(joined)
            }
            Self::Regex { pattern, replace } => {
                let re = pattern.regex();
                if !re.is_match(path) {
                    return None;
                }
                let out = re.replace(path, replace.as_str());
                Some(if out.starts_with('/') {
                    out.into_owned()
                } else {
                    format!("/{out}")
                })
            }
        }
    }
}

/// `path` without `prefix` when `prefix` ends on a segment boundary of `path`.
fn strip_segment_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let trimmed = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(trimmed)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

impl Stage for PathRewrite {
    fn name(&self) -> &'static str {
        "rewrite_path"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let Some(path) = self.apply(req.uri().path()) else {
            return Ok(Flow::Continue).into();
        };
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let Ok(pq) = PathAndQuery::try_from(path_and_query) else {
            let err = ProxyError::new(ErrorKind::BadRequest, "rewritten path is not a valid URI");
            return Err(err).into();
        };
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.path_and_query = Some(pq);
        match Uri::from_parts(parts) {
            Ok(uri) => {
                *req.uri_mut() = uri;
                Ok(Flow::Continue).into()
            }
            Err(_) => Err(ProxyError::new(
                ErrorKind::BadRequest,
                "rewritten URI is invalid",
            ))
            .into(),
        }
    }
}

/// Sends a fixed `Host` to the upstream instead of the client's.
#[derive(Debug)]
pub struct HostRewrite {
    host: HeaderValue,
}

impl HostRewrite {
    /// Rewrites `Host` to `host`.
    ///
    /// # Errors
    /// A value that cannot be a header.
    pub fn new(host: &str) -> Result<Self, String> {
        HeaderValue::from_str(host)
            .map(|host| Self { host })
            .map_err(|e| e.to_string())
    }
}

impl Stage for HostRewrite {
    fn name(&self) -> &'static str {
        "rewrite_host"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        req.headers_mut().insert(header::HOST, self.host.clone());
        Ok(Flow::Continue).into()
    }
}

/// Builds a route's `rewrite` stages, in this order: strip prefix, replace prefix, path regex,
/// host.
#[derive(Debug, Clone, Copy)]
pub struct RewriteStages;

/// A route's path rewrites, in the order they apply: strip, replace, regex.
#[must_use]
pub fn path_rewrites(rw: &Rewrite) -> Vec<PathRewrite> {
    let mut out = Vec::new();
    if let Some(p) = &rw.strip_prefix {
        out.push(PathRewrite::StripPrefix(p.to_string()));
    }
    if let Some(rp) = &rw.replace_prefix {
        out.push(PathRewrite::ReplacePrefix {
            from: rp.from.to_string(),
            to: rp.to.to_string(),
        });
    }
    if let Some(rx) = &rw.path_regex {
        out.push(PathRewrite::Regex {
            pattern: rx.pattern.clone(),
            replace: rx.replace.to_string(),
        });
    }
    out
}

/// The path the upstream gets for `path` after `rw`'s rewrites (each applies to the result of
/// the one before; one that does not match leaves the path as it is).
#[must_use]
pub fn rewritten_path(rw: &Rewrite, path: &str) -> String {
    path_rewrites(rw)
        .iter()
        .fold(path.to_owned(), |p, r| r.apply(&p).unwrap_or(p))
}

impl StageFactory for RewriteStages {
    fn name(&self) -> &'static str {
        "rewrite"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(rw) = &route.route.rewrite else {
            return Ok(Vec::new());
        };
        let mut stages: Vec<Box<dyn Stage>> = path_rewrites(rw)
            .into_iter()
            .map(|p| Box::new(p) as Box<dyn Stage>)
            .collect();
        if let Some(host) = &rw.host {
            let stage = HostRewrite::new(host)
                .map_err(|m| vec![route.error(Some(host.span()), "rewrite.host", m)])?;
            stages.push(Box::new(stage));
        }
        Ok(stages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(p: &str) -> PathRewrite {
        PathRewrite::StripPrefix(p.to_owned())
    }

    #[test]
    fn strip_prefix_works_on_segment_boundaries() {
        assert_eq!(strip("/api").apply("/api/users"), Some("/users".to_owned()));
        assert_eq!(strip("/api").apply("/api"), Some("/".to_owned()));
        assert_eq!(
            strip("/api/").apply("/api/users"),
            Some("/users".to_owned())
        );
        assert_eq!(strip("/api").apply("/apix/users"), None);
        assert_eq!(strip("/api").apply("/other"), None);
    }

    #[test]
    fn replace_prefix_joins_cleanly() {
        let r = PathRewrite::ReplacePrefix {
            from: "/v1".into(),
            to: "/v2".into(),
        };
        assert_eq!(r.apply("/v1/items"), Some("/v2/items".to_owned()));
        assert_eq!(r.apply("/v1"), Some("/v2".to_owned()));
        let r = PathRewrite::ReplacePrefix {
            from: "/old".into(),
            to: "/".into(),
        };
        assert_eq!(r.apply("/old/x"), Some("/x".to_owned()));
        assert_eq!(r.apply("/old"), Some("/".to_owned()));
    }

    #[test]
    fn regex_rewrites_use_captures() {
        let r = PathRewrite::Regex {
            pattern: Pattern::new("^/users/(?P<id>[0-9]+)/profile$").unwrap(),
            replace: "/profiles/${id}".into(),
        };
        assert_eq!(
            r.apply("/users/42/profile"),
            Some("/profiles/42".to_owned())
        );
        assert_eq!(r.apply("/users/x/profile"), None);
    }
}
