//! Endpoints of a service, read from its OpenAPI description, and matching a call's method and
//! path against them (path templates like `/persons/{id}`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

const METHODS: &[&str] = &[
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

/// One operation a service offers: an HTTP method and a path template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
}

impl Endpoint {
    /// Checks and normalises an endpoint an administrator typed: the method upper-cased (or `*`
    /// for any), the path starting with `/` (or `*` for any path).
    pub fn new(method: &str, path: &str) -> Result<Endpoint, String> {
        let method = method.trim().to_ascii_uppercase();
        if method != "*" && !METHODS.contains(&method.as_str()) {
            return Err(format!("`{}` is not an HTTP method", shorten(&method)));
        }
        let path = path.trim();
        if path != "*" && (!path.starts_with('/') || path.len() > 1000 || path.contains(['?', '#']))
        {
            return Err(format!(
                "endpoint path `{}` must start with `/` and carry no query",
                shorten(path)
            ));
        }
        Ok(Endpoint {
            method,
            path: path.to_string(),
        })
    }

    /// Whether a call `method path` is this endpoint (template segments `{x}` match any one
    /// non-empty segment; `*` matches anything).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        if self.path == "*" {
            return true;
        }
        let template: Vec<&str> = self.path.trim_end_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        template.len() == actual.len()
            && template.iter().zip(&actual).all(|(t, a)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !a.is_empty()
                } else {
                    t == a
                }
            })
    }
}

/// The endpoint a call is: among those matching, the most specific (most literal segments,
/// then an exact method over `*`), so that `/persons/export` is never taken for `/persons/{id}`.
pub fn most_specific<'a>(
    endpoints: &'a [Endpoint],
    method: &str,
    path: &str,
) -> Option<&'a Endpoint> {
    endpoints
        .iter()
        .filter(|e| e.matches(method, path))
        .max_by_key(|e| {
            let literals = if e.path == "*" {
                0
            } else {
                e.path
                    .split('/')
                    .filter(|seg| !(seg.starts_with('{') && seg.ends_with('}')))
                    .count()
                    + 1
            };
            (literals, e.method != "*")
        })
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The endpoints an OpenAPI 3 (or Swagger 2) description declares, in order.
pub fn endpoints(description: &str) -> Result<Vec<Endpoint>, String> {
    let doc: Value = serde_json::from_str(description).map_err(|e| {
        format!("the OpenAPI description must be JSON (OpenAPI 3 or Swagger 2): {e}")
    })?;
    let version_ok = doc.get("openapi").and_then(Value::as_str).is_some()
        || doc.get("swagger").and_then(Value::as_str).is_some();
    if !version_ok {
        return Err("the description has no `openapi` (or `swagger`) version field".into());
    }
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("the description has no `paths` object")?;
    let mut out = Vec::new();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for key in item.keys() {
            let method = key.to_ascii_uppercase();
            if METHODS.contains(&method.as_str()) {
                out.push(Endpoint::new(&method, path)?);
            }
        }
    }
    if out.is_empty() {
        return Err("the description declares no operations".into());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_operations_from_paths() {
        let doc = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{
            "/persons/{id}":{"get":{},"parameters":[]},
            "/persons":{"post":{},"get":{}}}}"#;
        let eps = endpoints(doc).unwrap();
        assert_eq!(
            eps,
            vec![
                Endpoint::new("GET", "/persons").unwrap(),
                Endpoint::new("GET", "/persons/{id}").unwrap(),
                Endpoint::new("POST", "/persons").unwrap(),
            ]
        );
        assert!(endpoints("{}").is_err());
        assert!(endpoints("not json").is_err());
        assert!(endpoints(r#"{"openapi":"3.0.0","paths":{}}"#).is_err());
    }

    #[test]
    fn the_most_specific_endpoint_wins() {
        let eps = vec![
            Endpoint::new("GET", "/persons/{id}").unwrap(),
            Endpoint::new("GET", "/persons/export").unwrap(),
            Endpoint::new("*", "*").unwrap(),
        ];
        let pick = |p: &str| most_specific(&eps, "GET", p).map(|e| e.path.clone());
        assert_eq!(pick("/persons/export").as_deref(), Some("/persons/export"));
        assert_eq!(pick("/persons/1").as_deref(), Some("/persons/{id}"));
        assert_eq!(pick("/other").as_deref(), Some("*"));
    }

    #[test]
    fn templates_match_segments() {
        let e = Endpoint::new("get", "/persons/{id}").unwrap();
        assert!(e.matches("GET", "/persons/1101700000001"));
        assert!(e.matches("get", "/persons/x/"));
        assert!(!e.matches("POST", "/persons/1"));
        assert!(!e.matches("GET", "/persons"));
        assert!(!e.matches("GET", "/persons//"));
        assert!(!e.matches("GET", "/persons/1/house"));
        assert!(Endpoint::new("*", "*").unwrap().matches("DELETE", "/x"));
        assert!(Endpoint::new("FETCH", "/x").is_err());
        assert!(Endpoint::new("GET", "x").is_err());
        assert!(Endpoint::new("GET", "/x?y").is_err());
    }
}
