//! `GET /cache` (the store's size and counters) and `DELETE /cache?key=` / `?prefix=` /
//! `?tag=` (purge by cache key, key prefix or `Surrogate-Key`).

use std::sync::atomic::Ordering;

use http::StatusCode;
use rampart_server::{AdminHandle, Purge};
use serde_json::json;

use crate::{AdminResponse, error, json};

/// The store's figures.
pub(crate) fn status(control: &AdminHandle) -> AdminResponse {
    let runtime = control.runtime();
    let Some(store) = runtime.cache() else {
        return error(StatusCode::NOT_FOUND, "no route has cache on");
    };
    let c = store.counters();
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    json(
        StatusCode::OK,
        &json!({
            "objects": store.objects(),
            "bytes": store.size(),
            "max_bytes": store.max_size(),
            "hits": n(&c.hits),
            "misses": n(&c.misses),
            "stale": n(&c.stale),
            "revalidated": n(&c.revalidated),
            "bypassed": n(&c.bypassed),
            "collapsed": n(&c.collapsed),
            "stored": n(&c.stored),
            "evictions": n(&c.evictions),
            "too_large": n(&c.too_large),
            "purged": n(&c.purged),
        }),
    )
}

/// Purges what the query names: exactly one of `key`, `prefix` or `tag`.
pub(crate) fn purge(control: &AdminHandle, query: Option<&str>) -> AdminResponse {
    let runtime = control.runtime();
    let Some(store) = runtime.cache() else {
        return error(StatusCode::NOT_FOUND, "no route has cache on");
    };
    let params: Vec<(&str, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (name, percent_decode(value))
        })
        .collect();
    let [(name, value)] = params.as_slice() else {
        return error(
            StatusCode::BAD_REQUEST,
            "give exactly one of key=, prefix= or tag= (percent-encoded)",
        );
    };
    let what = match *name {
        "key" => Purge::Key(value),
        "prefix" => Purge::Prefix(value),
        "tag" => Purge::Tag(value),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of key=, prefix= or tag= (percent-encoded)",
            );
        }
    };
    if value.is_empty() && *name != "prefix" {
        return error(StatusCode::BAD_REQUEST, "the value is empty");
    }
    let purged = store.purge(what);
    tracing::info!(by = *name, value = %value, purged, "cache purge on the admin API");
    json(StatusCode::OK, &json!({ "purged": purged }))
}

/// `%XX` sequences decoded (others kept as they are); `+` stays `+`.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_keeps_what_it_cannot_decode() {
        assert_eq!(
            percent_decode("http%3A%2F%2Fa%2Fb%3Fq%3D1"),
            "http://a/b?q=1"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz+"), "%zz+");
    }
}
