//! [`StaticFiles`]: the `static` handler. A request path is decoded and checked (see
//! [`path`]), then each candidate of the route's `try_files` (by default the path as a file,
//! then as a directory with its index files) is looked up under the root (see [`fs`]); the
//! first that exists is served (see [`respond`]), else the last entry decides: a fallback
//! file (the SPA case) or a status (404 by default).
//!
//! Error responses never show a filesystem path: a refusal's detail (for the logs) names the
//! request path only.

mod conditional;
mod file_body;
mod fs;
mod listing;
mod mime;
mod path;
mod range;
mod respond;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use rampart_config::ConfigError;
use rampart_config::model::StaticFiles as StaticConfig;
use rampart_core::{Body, ErrorKind, ProxyError, RouteSpec};

use self::fs::{Found, Miss, OpenFiles, Rules};
use self::mime::MimeTypes;
use self::path::PathRefusal;

/// A compiled `static` handler.
#[derive(Debug)]
pub struct StaticFiles {
    rules: Rules,
    strip_prefix: Option<String>,
    index: Vec<Vec<u8>>,
    tries: Vec<Template>,
    last: Last,
    listing: bool,
    cache_control: Option<HeaderValue>,
    precompressed: bool,
    mime: MimeTypes,
    files: Arc<OpenFiles>,
}

/// A `try_files` candidate: literal bytes and the request path (`$uri`), a directory when it
/// ends with `/`.
#[derive(Debug, Clone)]
struct Template {
    parts: Vec<Part>,
    dir: bool,
    /// Exactly `$uri/`: a directory asked for without its trailing slash is redirected.
    uri_dir: bool,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(Vec<u8>),
    Uri,
}

/// What happens when no candidate exists.
#[derive(Debug)]
enum Last {
    /// 404.
    NotFound,
    /// This status.
    Status(StatusCode),
    /// Serve this file with 200 (the SPA fallback).
    File(Template),
}

impl Template {
    fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("$uri") {
            if at > 0 {
                parts.push(Part::Literal(rest.as_bytes()[..at].to_vec()));
            }
            parts.push(Part::Uri);
            rest = &rest[at + 4..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.as_bytes().to_vec()));
        }
        if !text.starts_with('/') && !text.starts_with("$uri") {
            return Err(format!("{text:?} must start with `/` or `$uri`"));
        }
        if text.contains('$') && parts.iter().all(|p| matches!(p, Part::Literal(_)))
            || text.matches('$').count() != text.matches("$uri").count()
        {
            return Err(format!("{text:?}: the only variable is `$uri`"));
        }
        if text.split('/').any(|s| s == ".." || s == ".")
            || text.contains('\\')
            || text.contains('\0')
        {
            return Err(format!("{text:?} must not contain `.` or `..` segments"));
        }
        Ok(Self {
            dir: text.ends_with('/'),
            uri_dir: text == "$uri/",
            parts,
        })
    }

    /// The path under the root for the decoded request path `uri` (no leading `/`).
    fn expand(&self, uri: &[u8]) -> PathBuf {
        let mut out = Vec::with_capacity(uri.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal(bytes) => out.extend_from_slice(bytes),
                Part::Uri => {
                    out.push(b'/');
                    out.extend_from_slice(uri);
                }
            }
        }
        let trimmed: &[u8] = {
            let mut s = out.as_slice();
            while let [b'/', rest @ ..] = s {
                s = rest;
            }
            s
        };
        PathBuf::from(OsStr::from_bytes(trimmed))
    }
}

impl StaticFiles {
    /// Compiles the `static` handler of `route`; relative roots are resolved against the
    /// directory of the config file.
    ///
    /// # Errors
    /// A root that is not a readable directory, malformed `try_files`, `fallback`, `index`,
    /// `cache_control` or `mime_types` entries.
    pub fn compile(route: &RouteSpec<'_>, config: &StaticConfig) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let key = |k: &str| format!("static.{k}");
        let root = resolve_root(route, config.root.as_str());
        let root = match std::fs::canonicalize(&root) {
            Ok(root) if root.is_dir() => root,
            Ok(_) => {
                errors.push(route.error(
                    Some(config.root.span()),
                    &key("root"),
                    format!("{:?} is not a directory", config.root.get()),
                ));
                PathBuf::new()
            }
            Err(e) => {
                errors.push(route.error(
                    Some(config.root.span()),
                    &key("root"),
                    format!("cannot open {:?}: {e}", config.root.get()),
                ));
                PathBuf::new()
            }
        };
        let mut tries = Vec::new();
        let mut last = Last::NotFound;
        if !config.try_files.is_empty() && config.fallback.is_some() {
            errors.push(route.error(
                None,
                &key("fallback"),
                "give either `fallback` or `try_files`, not both",
            ));
        }
        let entries = &config.try_files;
        for (i, entry) in entries.iter().enumerate() {
            let is_last = i + 1 == entries.len();
            if let Some(code) = entry.strip_prefix('=') {
                match code
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (400..=599).contains(c))
                    .and_then(|c| StatusCode::from_u16(c).ok())
                {
                    Some(status) if is_last => last = Last::Status(status),
                    Some(_) => errors.push(route.error(
                        Some(entry.span()),
                        &key("try_files"),
                        "a `=status` entry must come last",
                    )),
                    None => errors.push(route.error(
                        Some(entry.span()),
                        &key("try_files"),
                        format!(
                            "{:?}: expected `=404` or another 4xx/5xx status",
                            entry.get()
                        ),
                    )),
                }
                continue;
            }
            match Template::parse(entry) {
                Ok(t) if is_last && entries.len() > 1 => last = Last::File(t),
                Ok(t) => tries.push(t),
                Err(m) => errors.push(route.error(Some(entry.span()), &key("try_files"), m)),
            }
        }
        if entries.is_empty() {
            tries = vec![uri_template(false), uri_template(true)];
            if let Some(fallback) = &config.fallback {
                match Template::parse(fallback)
                    .map(|t| (t.parts.iter().any(|p| matches!(p, Part::Uri)), t))
                {
                    Ok((false, t)) => last = Last::File(t),
                    Ok((true, _)) => errors.push(route.error(
                        Some(fallback.span()),
                        &key("fallback"),
                        "the fallback is one file: `$uri` is for `try_files`",
                    )),
                    Err(m) => errors.push(route.error(Some(fallback.span()), &key("fallback"), m)),
                }
            }
        }
        let mut index = Vec::new();
        for name in &config.index {
            if name.is_empty()
                || name.contains('/')
                || name.as_str() == ".."
                || name.as_str() == "."
            {
                errors.push(route.error(
                    Some(name.span()),
                    &key("index"),
                    format!("{:?} must be a file name", name.get()),
                ));
            }
            index.push(name.as_bytes().to_vec());
        }
        let cache_control =
            config
                .cache_control
                .as_ref()
                .and_then(|cc| match HeaderValue::from_str(cc) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        errors.push(route.error(
                            Some(cc.span()),
                            &key("cache_control"),
                            "invalid header value",
                        ));
                        None
                    }
                });
        for (ext, ty) in &config.mime_types {
            if HeaderValue::from_str(ty).is_err() || !ty.contains('/') {
                errors.push(route.error(
                    Some(ty.span()),
                    &format!("static.mime_types.{ext}"),
                    format!("{:?} is not a media type", ty.get()),
                ));
            }
        }
        if let Some(prefix) = &config.strip_prefix
            && (!prefix.starts_with('/') || prefix.contains(".."))
        {
            errors.push(route.error(
                Some(prefix.span()),
                &key("strip_prefix"),
                "must be a path starting with `/`",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let cache = &config.open_file_cache;
        Ok(Self {
            rules: Rules {
                root,
                symlinks_outside_root: config.symlinks_outside_root,
                hidden: config.hidden,
            },
            strip_prefix: config
                .strip_prefix
                .as_ref()
                .map(|p| p.trim_end_matches('/').to_owned()),
            index,
            tries,
            last,
            listing: config.listing,
            cache_control,
            precompressed: config.precompressed,
            mime: MimeTypes::new(
                config
                    .mime_types
                    .iter()
                    .map(|(e, t)| (e.as_str(), t.as_str())),
            ),
            files: Arc::new(OpenFiles::new(
                usize::try_from(*cache.max_entries.get()).unwrap_or(usize::MAX),
                cache.valid.get(),
            )),
        })
    }

    /// One line for `rampart explain`.
    #[must_use]
    pub fn summary(&self) -> String {
        let fallback = match &self.last {
            Last::NotFound => String::new(),
            Last::Status(s) => format!(", else {}", s.as_u16()),
            Last::File(_) => ", with a fallback file".to_owned(),
        };
        format!("serve static files{fallback}")
    }

    /// Answers `req` from the files under the root.
    ///
    /// # Errors
    /// 405 for methods other than `GET` and `HEAD`, 400 for a path that tries to leave the
    /// root, 404 for what is not there (or hidden), 403 for what must not be served, 412 and
    /// 416 for failed preconditions and unsatisfiable ranges.
    pub async fn serve(&self, req: &Parts) -> Result<Response<Body>, ProxyError> {
        if req.method != Method::GET && req.method != Method::HEAD {
            return Err(ProxyError::method_not_allowed(HeaderValue::from_static(
                "GET, HEAD",
            )));
        }
        let full = req.uri.path();
        let path = match &self.strip_prefix {
            Some(prefix) => match full.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => return Err(not_found(full)),
            },
            None => full,
        };
        let uri = match path::decode(if path.is_empty() { "/" } else { path }, self.rules.hidden) {
            Ok(uri) => uri,
            Err(PathRefusal::Bad(why)) => {
                return Err(ProxyError::new(
                    ErrorKind::BadRequest,
                    format!("static path {full:?}: {why}"),
                ));
            }
            Err(PathRefusal::Hidden) => return Err(not_found(full)),
        };
        for template in &self.tries {
            let relative = template.expand(&uri);
            match self.lookup(&relative).await {
                Ok(Found::File(file)) if !template.dir => {
                    return self.file(req, &relative, file).await;
                }
                Ok(Found::Dir(dir)) if template.dir => {
                    if template.uri_dir && !full.ends_with('/') {
                        return Ok(redirect_to_slash(req));
                    }
                    if let Some(resp) = self.directory(req, &relative, &dir, full).await? {
                        return Ok(resp);
                    }
                }
                Ok(_) | Err(Miss::NotFound) => {}
                Err(Miss::Forbidden(why)) => return Err(forbidden(full, why)),
            }
        }
        match &self.last {
            Last::NotFound => Err(not_found(full)),
            Last::Status(status) if *status == StatusCode::NOT_FOUND => Err(not_found(full)),
            Last::Status(status) => Ok(status_response(*status)),
            Last::File(template) => {
                let relative = template.expand(&uri);
                match self.lookup(&relative).await {
                    Ok(Found::File(file)) => self.file(req, &relative, file).await,
                    Ok(Found::Dir(_)) | Err(Miss::NotFound) => Err(not_found(full)),
                    Err(Miss::Forbidden(why)) => Err(forbidden(full, why)),
                }
            }
        }
    }

    /// An index file of directory `relative`, or its listing; `None` when it has neither.
    async fn directory(
        &self,
        req: &Parts,
        relative: &Path,
        dir: &Path,
        shown: &str,
    ) -> Result<Option<Response<Body>>, ProxyError> {
        for name in &self.index {
            let candidate = relative.join(OsStr::from_bytes(name));
            match self.lookup(&candidate).await {
                Ok(Found::File(file)) => return self.file(req, &candidate, file).await.map(Some),
                Ok(Found::Dir(_)) | Err(Miss::NotFound) => {}
                Err(Miss::Forbidden(why)) => return Err(forbidden(shown, why)),
            }
        }
        if !self.listing {
            return Ok(None);
        }
        let (dir, hidden) = (dir.to_path_buf(), self.rules.hidden);
        let read = tokio::task::spawn_blocking(move || listing::read(&dir, hidden)).await;
        let Ok(Ok((entries, truncated))) = read else {
            return Err(forbidden(shown, "directory cannot be read"));
        };
        Ok(Some(respond::listing(req, shown, &entries, truncated)))
    }

    /// Looks `relative` up: from the open-file cache while it is valid, else on the blocking
    /// pool.
    async fn lookup(&self, relative: &Path) -> Result<Found, Miss> {
        if let Some(file) = self.files.fresh(relative) {
            return Ok(file);
        }
        let (rules, relative) = (self.rules.clone(), relative.to_path_buf());
        let files = Arc::clone(&self.files);
        tokio::task::spawn_blocking(move || files.resolve(&rules, &relative))
            .await
            .unwrap_or(Err(Miss::NotFound))
    }
}

fn uri_template(dir: bool) -> Template {
    Template {
        parts: vec![
            Part::Uri,
            Part::Literal(if dir { b"/".to_vec() } else { Vec::new() }),
        ],
        dir,
        uri_dir: dir,
    }
}

fn resolve_root(route: &RouteSpec<'_>, root: &str) -> PathBuf {
    let root = Path::new(root);
    if root.is_absolute() {
        return root.to_path_buf();
    }
    Path::new(&route.config.source().origin)
        .parent()
        .map_or_else(|| root.to_path_buf(), |dir| dir.join(root))
}

fn not_found(shown: &str) -> ProxyError {
    ProxyError::new(ErrorKind::FileNotFound, format!("no file for {shown:?}"))
}

fn forbidden(shown: &str, why: &str) -> ProxyError {
    ProxyError::new(ErrorKind::FileForbidden, format!("{shown:?}: {why}"))
}

/// 301 to the same path with a trailing `/` (and the same query).
fn redirect_to_slash(req: &Parts) -> Response<Body> {
    let mut location = format!("{}/", req.uri.path());
    if let Some(query) = req.uri.query() {
        location.push('?');
        location.push_str(query);
    }
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp
}

/// A `try_files` `=status` answer other than 404.
fn status_response(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::full(format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests;
