//! Where credentials are read from: `header` (`Authorization: Bearer`), `header:NAME`,
//! `cookie:NAME`, `query:NAME`. Values are borrowed from the request (no copy); query values
//! are taken out of the URI first (see [`take_query`]) so they reach neither the upstream nor
//! the access log.

use http::header::{AUTHORIZATION, COOKIE, HeaderName};
use http::{HeaderMap, Uri};

/// One place a credential may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic <credentials>` (the base64 part).
    Basic,
    /// The whole value of a header.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// A query parameter (taken out of the URI).
    Query(String),
}

impl Source {
    /// Parses `header`, `header:NAME`, `cookie:NAME` or `query:NAME`.
    ///
    /// # Errors
    /// Explains the accepted forms.
    pub(crate) fn parse(text: &str, bearer: bool) -> Result<Self, String> {
        match text.split_once(':') {
            None if text == "header" && bearer => Ok(Self::Bearer),
            Some(("header", name)) => HeaderName::from_bytes(name.as_bytes())
                .map(Self::Header)
                .map_err(|_| format!("invalid header name {name:?}")),
            Some(("cookie", name)) if !name.is_empty() && !name.contains([';', '=', ' ']) => {
                Ok(Self::Cookie(name.to_owned()))
            }
            Some(("query", name))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'&' && b != b'=') =>
            {
                Ok(Self::Query(name.to_owned()))
            }
            _ if bearer => Err(format!(
                "invalid token source {text:?}: expected \"header\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\""
            )),
            _ => Err(format!(
                "invalid key source {text:?}: expected \"header:NAME\" or \"query:NAME\""
            )),
        }
    }

    /// The credential this source finds in `headers` or among the `taken` query parameters.
    pub(crate) fn find<'r>(
        &self,
        headers: &'r HeaderMap,
        taken: &'r [(String, String)],
    ) -> Option<&'r str> {
        match self {
            Self::Bearer => {
                let v = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
                let (scheme, token) = v.split_once(' ')?;
                let token = token.trim();
                (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
            }
            Self::Basic => {
                let v = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
                let (scheme, credentials) = v.split_once(' ')?;
                let credentials = credentials.trim();
                (scheme.eq_ignore_ascii_case("basic") && !credentials.is_empty())
                    .then_some(credentials)
            }
            Self::Header(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty()),
            Self::Cookie(name) => headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim_matches('"'))
                .filter(|v| !v.is_empty()),
            Self::Query(name) => taken
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty()),
        }
    }
}

/// Takes the parameters named in `names` out of `uri`'s query: returns the URI without them
/// and their values, or `None` when the query holds none of them (the common case: nothing is
/// built).
pub(crate) fn take_query(uri: &Uri, names: &[String]) -> Option<(Uri, Vec<(String, String)>)> {
    let query = uri.query()?;
    let named = |pair: &str| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        names.iter().any(|n| n == key)
    };
    if !query.split('&').any(named) {
        return None;
    }
    let mut taken = Vec::new();
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        if named(pair) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            taken.push((k.to_owned(), v.to_owned()));
        } else {
            kept.push(pair);
        }
    }
    let path = uri.path();
    let rest = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = rest.parse().ok();
    let stripped = Uri::from_parts(parts).ok()?;
    Some((stripped, taken))
}

/// `uri` with each of `names`' values in the query replaced by `REDACTED`, for logs.
pub(crate) fn redacted(uri: &Uri, names: &[String]) -> Option<Uri> {
    let query = uri.query()?;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if names.iter().any(|n| n == key) {
                format!("{key}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = format!("{}?{}", uri.path(), pairs.join("&")).parse().ok();
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_find_their_credential() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "bearer abc.def.ghi".parse().unwrap());
        h.append(COOKIE, "a=1; session=tok; b=2".parse().unwrap());
        h.insert("x-token", "xyz".parse().unwrap());
        let taken = vec![("access_token".to_owned(), "q.t.v".to_owned())];
        assert_eq!(Source::Bearer.find(&h, &taken), Some("abc.def.ghi"));
        assert_eq!(
            Source::Cookie("session".into()).find(&h, &taken),
            Some("tok")
        );
        assert_eq!(
            Source::parse("header:x-token", true)
                .unwrap()
                .find(&h, &taken),
            Some("xyz")
        );
        assert_eq!(
            Source::Query("access_token".into()).find(&h, &taken),
            Some("q.t.v")
        );
        h.insert(AUTHORIZATION, "Basic Zm9vOmJhcg==".parse().unwrap());
        assert_eq!(Source::Bearer.find(&h, &taken), None);
        assert!(Source::parse("body", true).is_err());
        assert!(Source::parse("header", false).is_err());
    }

    #[test]
    fn query_credentials_leave_the_uri() {
        let names = vec!["access_token".to_owned()];
        let uri: Uri = "/a/b?x=1&access_token=secret.tok.en&y=2".parse().unwrap();
        let (stripped, taken) = take_query(&uri, &names).unwrap();
        assert_eq!(stripped.to_string(), "/a/b?x=1&y=2");
        assert_eq!(
            taken,
            vec![("access_token".to_owned(), "secret.tok.en".to_owned())]
        );
        let shown = redacted(&uri, &names).unwrap();
        assert_eq!(shown.to_string(), "/a/b?x=1&access_token=REDACTED&y=2");
        let only: Uri = "/p?access_token=t".parse().unwrap();
        assert_eq!(take_query(&only, &names).unwrap().0.to_string(), "/p");
        let none: Uri = "/p?x=access_token".parse().unwrap();
        assert!(take_query(&none, &names).is_none());
    }
}
