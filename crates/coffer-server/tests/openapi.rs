//! docs/openapi.yaml describes exactly the routes the server has: every (method, path) of
//! `coffer_server::api_routes()` is in the spec and the spec has no other `/v1/` or
//! `/metrics` operation.

use std::collections::BTreeSet;

use serde_json::Value;

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");

/// The HTTP methods an OpenAPI path item may hold (its other keys are not operations).
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn is_api(path: &str) -> bool {
    path.starts_with("/v1/") || path == "/metrics"
}

fn spec() -> Value {
    let text = std::fs::read_to_string(SPEC).unwrap_or_else(|e| panic!("{SPEC}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{SPEC} is not YAML: {e}"))
}

/// (METHOD, path) of every API operation in the spec, with the operation.
fn described(spec: &Value) -> Vec<((String, String), Value)> {
    let paths = spec["paths"].as_object().expect("the spec has `paths`");
    let mut ops = Vec::new();
    for (path, item) in paths.iter().filter(|(p, _)| is_api(p)) {
        let item = item.as_object().expect("a path item is a mapping");
        for (method, op) in item.iter().filter(|(k, _)| METHODS.contains(&k.as_str())) {
            ops.push(((method.to_uppercase(), path.clone()), op.clone()));
        }
    }
    ops
}

#[test]
fn the_openapi_description_lists_exactly_the_routes() {
    let spec = spec();
    assert_eq!(spec["openapi"].as_str(), Some("3.1.0"));
    let described: BTreeSet<(String, String)> =
        described(&spec).into_iter().map(|(k, _)| k).collect();

    let routes = coffer_server::api_routes();
    let routed: BTreeSet<(String, String)> = routes
        .iter()
        .filter(|(_, p)| is_api(p))
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routed.len(), routes.len(), "a route is listed twice");
    let expected = routed;
    let missing: Vec<_> = expected.difference(&described).collect();
    let extra: Vec<_> = described.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.yaml and the router differ: routes not described {missing:?}, described but not routed {extra:?}"
    );
}

#[test]
fn every_operation_documents_bearer_auth_and_its_path_parameters() {
    let spec = spec();
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"].as_str(),
        Some("bearer")
    );
    assert_eq!(spec["security"][0]["bearer"], serde_json::json!([]));
    let resolve = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(r) => {
                let name = r
                    .strip_prefix("#/components/parameters/")
                    .unwrap_or_else(|| panic!("unexpected $ref {r}"));
                spec["components"]["parameters"][name].clone()
            }
            None => v.clone(),
        }
    };
    for ((method, path), op) in described(&spec) {
        let at = format!("{method} {path}");
        assert!(op["responses"]["401"].is_object(), "{at}: no 401 response");
        let params: Vec<Value> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().map(&resolve).collect())
            .unwrap_or_default();
        let in_path: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(in_path, templated, "{at}: path parameters");
        // Restores go through the typed gate: the header and its 412 are documented.
        if path.ends_with("/restore") {
            assert!(
                params
                    .iter()
                    .any(|p| p["in"] == "header" && p["name"] == "X-Confirm-Restore"),
                "{at}: X-Confirm-Restore"
            );
            assert!(op["responses"]["412"].is_object(), "{at}: no 412 response");
        }
    }
}
