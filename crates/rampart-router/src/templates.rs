//! The template index of one host table: matchit radix trees over template shapes.
//!
//! matchit returns one route per lookup, the most specific by its own rules, and refuses some
//! combinations (a `{param}` and a `{*rest}` at the same position). The router needs every
//! template that matches, ranked by its own precedence, so:
//! - each matchit node lists as candidates every template of its layer that overlaps the node's
//!   key; candidates other than the node's own template are re-checked against the path (a cheap
//!   segment walk), so a more specific template that fails its method or header predicates falls
//!   back to a more general one;
//! - templates matchit cannot hold together go to another layer (another matchit tree); every
//!   layer is looked up. Real configs need one or two layers.
//! - a catch-all template also registers its empty-rest forms (`/files` and `/files/` for
//!   `/files/{*rest}`), which matchit's `{*rest}` does not match.

use crate::path::Template;

/// Upper bound on matchit trees per table; more means a pathological config.
const MAX_LAYERS: usize = 8;

/// A template bucket to look at for a path, and whether the path must be re-checked against it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    /// Index of the template (and its bucket) in the table.
    pub(crate) template: u32,
    /// The node's key is not this template's own key: check [`Template::matches`] first.
    pub(crate) verify: bool,
}

#[derive(Debug, Default)]
struct Layer {
    router: matchit::Router<u32>,
    /// Key of every node, with its form (as a template) and candidate list.
    keys: Vec<String>,
    forms: Vec<Template>,
    candidates: Vec<Vec<Candidate>>,
    /// Templates placed in this layer.
    members: Vec<u32>,
}

impl Layer {
    fn rebuild_router(&mut self) {
        let mut router = matchit::Router::new();
        for (id, key) in (0u32..).zip(&self.keys) {
            // These keys were all inserted together before, so this cannot fail; a failure
            // would only make lookups miss, never panic.
            let _ = router.insert(key.clone(), id);
        }
        self.router = router;
    }

    /// Tries to add `template` (index `id`) with its keys; on conflict leaves the layer as it was.
    fn try_add(&mut self, id: u32, template: &Template) -> Result<(), String> {
        let mut forms = vec![template.clone()];
        forms.extend(template.empty_rest_forms());
        let before = self.keys.len();
        for form in forms {
            let key = form.key();
            if self.keys.contains(&key) {
                continue;
            }
            let node =
                u32::try_from(self.keys.len()).map_err(|_| "too many templates".to_owned())?;
            if let Err(e) = self.router.insert(key.clone(), node) {
                self.keys.truncate(before);
                self.forms.truncate(before);
                self.rebuild_router();
                return Err(e.to_string());
            }
            self.keys.push(key);
            self.forms.push(form);
        }
        self.members.push(id);
        Ok(())
    }
}

/// The matchit layers of one table.
#[derive(Debug, Default)]
pub(crate) struct TemplateIndex {
    layers: Vec<Layer>,
}

impl TemplateIndex {
    /// Indexes `templates` (one per bucket, distinct keys). Errors name the template index and
    /// what went wrong.
    pub(crate) fn build(templates: &[Template]) -> Result<Self, Vec<(usize, String)>> {
        let mut layers: Vec<Layer> = Vec::new();
        let mut errors = Vec::new();
        for (i, (id, template)) in (0u32..).zip(templates).enumerate() {
            let mut last_error = String::new();
            let mut placed = false;
            for l in 0..MAX_LAYERS {
                if l == layers.len() {
                    layers.push(Layer::default());
                }
                match layers[l].try_add(id, template) {
                    Ok(()) => {
                        placed = true;
                        break;
                    }
                    Err(e) => last_error = e,
                }
            }
            if !placed {
                errors.push((
                    i,
                    format!(
                        "template {:?} cannot be indexed: {last_error}",
                        template.source()
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        layers.retain(|l| !l.members.is_empty());
        for layer in &mut layers {
            layer.candidates = layer
                .forms
                .iter()
                .zip(&layer.keys)
                .map(|(form, key)| {
                    layer
                        .members
                        .iter()
                        .filter_map(|&m| {
                            let t = templates.get(m as usize)?;
                            t.overlaps(form).then(|| Candidate {
                                template: m,
                                verify: t.key() != *key,
                            })
                        })
                        .collect()
                })
                .collect();
        }
        Ok(Self { layers })
    }

    /// Calls `f` with the candidates for `path` in every layer. No allocation for templates with
    /// at most three parameters.
    #[inline]
    pub(crate) fn for_each_candidate(&self, path: &str, mut f: impl FnMut(Candidate)) {
        for layer in &self.layers {
            if let Ok(m) = layer.router.at(path)
                && let Some(cands) = layer.candidates.get(*m.value as usize)
            {
                for &c in cands {
                    f(c);
                }
            }
        }
    }

    /// Number of matchit trees (for tests).
    #[cfg(test)]
    pub(crate) fn layer_count(&self) -> usize {
        self.layers.len()
    }
}

/// Checks, for tests, that every template that matches a path is offered as a candidate.
#[cfg(test)]
pub(crate) fn matching_candidates(
    index: &TemplateIndex,
    templates: &[Template],
    path: &str,
) -> Vec<u32> {
    let mut found = std::collections::BTreeSet::new();
    index.for_each_candidate(path, |c| {
        if let Some(t) = templates.get(c.template as usize)
            && (!c.verify || t.matches(path))
        {
            found.insert(c.template);
        }
    });
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(list: &[&str]) -> (TemplateIndex, Vec<Template>) {
        let templates: Vec<Template> = list.iter().map(|t| Template::parse(t).unwrap()).collect();
        (TemplateIndex::build(&templates).unwrap(), templates)
    }

    fn expected(templates: &[Template], path: &str) -> Vec<u32> {
        (0u32..)
            .zip(templates)
            .filter(|(_, t)| t.matches(path))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn a_static_template_does_not_hide_the_general_one() {
        let (index, templates) = build(&["/users/{id}", "/users/me"]);
        assert_eq!(matching_candidates(&index, &templates, "/users/me"), [0, 1]);
        assert_eq!(matching_candidates(&index, &templates, "/users/42"), [0]);
    }

    #[test]
    fn param_and_catch_all_at_the_same_position_go_to_separate_layers() {
        let (index, templates) = build(&["/users/{id}", "/users/{*rest}", "/users/{id}/posts"]);
        assert_eq!(index.layer_count(), 2);
        assert_eq!(matching_candidates(&index, &templates, "/users/42"), [0, 1]);
        assert_eq!(
            matching_candidates(&index, &templates, "/users/42/posts"),
            [1, 2]
        );
        assert_eq!(matching_candidates(&index, &templates, "/users"), [1]);
    }

    #[test]
    fn catch_all_empty_rest_is_found() {
        let (index, templates) = build(&["/files/{*rest}", "/{*all}"]);
        assert_eq!(matching_candidates(&index, &templates, "/files"), [0, 1]);
        assert_eq!(matching_candidates(&index, &templates, "/files/"), [0, 1]);
        assert_eq!(matching_candidates(&index, &templates, "/"), [1]);
    }

    #[test]
    fn every_matching_template_is_a_candidate_across_a_mixed_set() {
        let list = [
            "/users/{id}",
            "/users/me",
            "/users/{id}/posts",
            "/users/{id}/posts/{post}",
            "/{a}/{b}",
            "/files/{*r}",
            "/{*r}",
            "/users/",
            "/files",
            "/a/{x}/c",
            "/a/b/{*r}",
            "/{a}",
            "/api/v1/{res}/{id}",
            "/api/{ver}/users/{id}",
            "/api/{*rest}",
            "/",
            "/x/{y}/",
        ];
        let (index, templates) = build(&list);
        let paths = [
            "/users/42",
            "/users/me",
            "/users/me/posts",
            "/users/1/posts/2",
            "/users/",
            "/users",
            "/files",
            "/files/",
            "/files/x/y",
            "/a/b/c",
            "/a/b",
            "/a/q/c",
            "/x",
            "/x/y/",
            "/x/y",
            "/",
            "/api/v1/users/7",
            "/api/v2/users/7",
            "/api",
            "/api/",
            "/nothing/here/at/all",
            "//",
            "/a//c",
        ];
        for path in paths {
            assert_eq!(
                matching_candidates(&index, &templates, path),
                expected(&templates, path),
                "{path}"
            );
        }
    }
}
