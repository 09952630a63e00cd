//! The index agrees with brute-force evaluation on generated configs.

use super::*;
use crate::{Matcher, Router};

// ---- the index agrees with brute force -------------------------------------------------------

/// xorshift64*: deterministic, dependency-free randomness for generated configs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn random_route(rng: &mut Rng, n: usize) -> String {
    let mut r = format!("name = \"r{n}\"\n");
    if rng.chance(60) {
        let hosts = [
            "a.example.com",
            "b.example.com",
            "*.example.com",
            "*.eu.example.com",
            "*",
            "x.org",
        ];
        let (a, b) = (rng.pick(&hosts), rng.pick(&hosts));
        r.push_str(&if rng.chance(30) {
            format!("hosts = [\"{a}\", \"{b}\"]\n")
        } else {
            format!("hosts = [\"{a}\"]\n")
        });
    }
    match rng.next() % 5 {
        0 => {}
        1 => r.push_str(&format!(
            "path = \"{}\"\n",
            rng.pick(&["/", "/a", "/a/b", "/users/me", "/files"])
        )),
        2 => r.push_str(&format!(
            "path_prefix = \"{}\"\n",
            rng.pick(&["/", "/a", "/a/", "/a/b", "/users", "/files/"])
        )),
        3 => {
            let templates = [
                "/users/{id}",
                "/users/me",
                "/users/{id}/posts",
                "/{a}/{b}",
                "/files/{*r}",
                "/{*r}",
                "/a/{x}",
                "/a/{*r}",
                "/a/b/{*r}",
                "/{a}",
                "/users/{id}/{*rest}",
            ];
            r.push_str(&format!("path_template = \"{}\"\n", rng.pick(&templates)));
        }
        _ => r.push_str(&format!(
            "path_regex = '{}'\n",
            rng.pick(&["^/a", "b$", "/users/[0-9]+", "^/files/"])
        )),
    }
    if rng.chance(30) {
        r.push_str(rng.pick(&[
            "methods = [\"GET\"]\n",
            "methods = [\"POST\"]\n",
            "methods = [\"GET\", \"POST\"]\n",
        ]));
    }
    if rng.chance(25) {
        r.push_str(rng.pick(&[
            "headers = [{ name = \"x-env\", value = \"prod\" }]\n",
            "headers = [{ name = \"x-env\", regex = \"^p\" }]\n",
            "headers = [{ name = \"x-debug\" }]\n",
            "headers = [{ name = \"x-debug\", present = false }]\n",
        ]));
    }
    if rng.chance(20) {
        r.push_str(rng.pick(&[
            "query = [{ name = \"v\", value = \"1\" }]\n",
            "query = [{ name = \"v\" }]\n",
            "query = [{ name = \"v\", present = false }]\n",
        ]));
    }
    if rng.chance(15) {
        r.push_str(rng.pick(&["priority = 1\n", "priority = -1\n", "priority = 2\n"]));
    }
    r.push_str("echo = true\n");
    r
}

#[test]
fn index_lookup_agrees_with_brute_force_on_generated_configs() {
    let hosts = [
        "a.example.com",
        "A.EXAMPLE.com:80",
        "q.eu.example.com",
        "eu.example.com",
        "x.org.",
        "",
        "example.com",
    ];
    let paths = [
        "/",
        "/a",
        "/a/",
        "/a/b",
        "/a/b/c",
        "/users/me",
        "/users/42",
        "/users/42/posts",
        "/files",
        "/files/",
        "/files/x/y",
        "/ab",
        "/x",
        "/users/42/posts/9",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut routed = 0;
    for round in 0..40 {
        let mut entries = Vec::new();
        let mut signatures = std::collections::HashSet::new();
        for n in 0..(10 + round * 3) {
            let text = random_route(&mut rng, n);
            let route: rampart_config::model::Route = toml::from_str(&text).unwrap();
            let m = Matcher::from_config(&route, &format!("routes[{n}]")).unwrap();
            if signatures.insert(m.signature()) {
                let index = entries.len();
                entries.push((m, index));
            }
        }
        let router = Router::new(entries).unwrap_or_else(|e| panic!("{e:?}"));
        for _ in 0..200 {
            let target = if rng.chance(30) {
                format!(
                    "{}?{}",
                    rng.pick(&paths),
                    rng.pick(&["v=1", "v", "v=2&v=1", "w=1"])
                )
            } else {
                rng.pick(&paths).to_owned()
            };
            let mut probe =
                req(rng.pick(&hosts), &target).method(rng.pick(&["GET", "POST", "PUT"]));
            if rng.chance(40) {
                probe = probe.header("x-env", rng.pick(&["prod", "dev", "pre"]).as_bytes());
            }
            if rng.chance(30) {
                probe = probe.header("x-debug", b"1");
            }
            routed += usize::from(winner(&router, &probe).is_some());
        }
    }
    // The generated requests must exercise both outcomes for the comparison to mean anything.
    assert!(
        routed > 2000 && routed < 8000,
        "{routed} of 8000 requests routed"
    );
}
