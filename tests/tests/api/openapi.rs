//! `openapi.yaml` held against the code. Its routes are the router's and the template's; its
//! request bodies are the schema files the server compiles, and the routes accept exactly
//! what those schemas accept; its problem codes are exactly `ApiError`'s; every (route,
//! status, code) it documents is produced by the shared handlers against MongoDB; and every
//! response of a full flow matches the documented status, media type, body schema and headers.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use adapters::mongo::{MongoOptions, MongoStore};
use api_tests::{
    passkey::{Authenticator, ORIGIN, relying_party},
    *,
};
use domain::{
    clock::{Clock, ManualClock},
    types::UserId,
};
use edge::{State, error::ApiError, routes::Endpoint, schema::SOURCES, state::StoreKind};
use jsonschema::{Draft, Validator};
use mongodb::bson::{doc, oid::ObjectId};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Reading the document
// ---------------------------------------------------------------------------------------------

const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `openapi.yaml`, parsed.
fn doc() -> Value {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("openapi.yaml: {e}"))
}

/// A route as (METHOD, path).
type RouteKey = (String, String);

/// Every operation of the document by (METHOD, path).
fn operations(doc: &Value) -> BTreeMap<RouteKey, Value> {
    let mut ops = BTreeMap::new();
    let paths = doc["paths"].as_object().expect("openapi.yaml has no paths");
    for (path, item) in paths {
        for (key, op) in item.as_object().unwrap() {
            if OPERATION_KEYS.contains(&key.as_str()) {
                ops.insert((key.to_uppercase(), path.clone()), op.clone());
            }
        }
    }
    ops
}

/// Follows local `$ref`s (`#/...`) until a value without one.
fn deref<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with('#') => {
                v = doc
                    .pointer(&r[1..])
                    .unwrap_or_else(|| panic!("openapi.yaml: unresolved $ref {r}"));
            }
            _ => return v,
        }
    }
    panic!("openapi.yaml: $ref chain too long")
}

/// The documented response of (method, path) for `status`, `$ref`s followed.
fn response<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> Option<&'a Value> {
    let op = doc["paths"][path].get(method.to_lowercase())?;
    op["responses"]
        .get(status.to_string())
        .map(|r| deref(doc, r))
}

/// A validator for `schema`, a schema inside the document: it is wrapped in a root that holds
/// the document's `components/schemas`, so its `#/components/schemas/X` references resolve.
fn validator(doc: &Value, schema: &Value) -> Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": {"schemas": doc["components"]["schemas"]},
        "allOf": [schema],
    });
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("openapi.yaml schema {schema}: {e}"))
}

/// The problem codes a documented error response allows: the `code` `const`/`enum` that
/// narrows `Problem` in its schema's `allOf`.
fn response_codes(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = deref(doc, schema);
    let parts: Vec<&Value> = match schema.get("allOf").and_then(Value::as_array) {
        Some(all) => all.iter().map(|s| deref(doc, s)).collect(),
        None => vec![schema],
    };
    let mut codes = BTreeSet::new();
    for part in parts {
        let code = &part["properties"]["code"];
        if let Some(c) = code.get("const").and_then(Value::as_str) {
            codes.insert(c.to_owned());
        }
        for c in code
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            codes.insert(c.as_str().unwrap().to_owned());
        }
    }
    codes
}

/// Every documented (METHOD, path, status, code): `code` is empty for a success, and an error
/// response contributes one entry per problem code it allows.
fn documented(doc: &Value) -> BTreeSet<(String, String, u16, String)> {
    let mut out = BTreeSet::new();
    for ((method, path), op) in operations(doc) {
        let responses = op["responses"]
            .as_object()
            .expect("operation without responses");
        for (status, r) in responses {
            let status: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{method} {path}: status {status} is not a number"));
            let r = deref(doc, r);
            // API Gateway's own answers never reach a handler (the dev server's stand-in is
            // tested in `mfa`).
            if r["x-answered-by"] == "api-gateway" {
                continue;
            }
            match r["content"].get("application/problem+json") {
                Some(media) => {
                    let codes = response_codes(doc, &media["schema"]);
                    assert!(
                        !codes.is_empty(),
                        "{method} {path} {status}: the problem schema must narrow `code`"
                    );
                    for code in codes {
                        out.insert((method.clone(), path.clone(), status, code));
                    }
                }
                None => {
                    out.insert((method.clone(), path.clone(), status, String::new()));
                }
            }
        }
    }
    out
}

/// How `answer` (to METHOD `path`) disagrees with the document: an undocumented status, a
/// media type the response does not list, a body its schema refuses, or a documented header
/// missing or not matching its schema. Empty when they agree.
fn disagreements(doc: &Value, method: &str, path: &str, answer: &Answer) -> Vec<String> {
    let status = answer.status.as_u16();
    let Some(resp) = response(doc, method, path, status) else {
        return vec![format!("status {status} is not documented")];
    };
    let mut out = Vec::new();
    let media = answer
        .content_type()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    match resp.get("content").and_then(Value::as_object) {
        Some(content) => match content.get(&media) {
            Some(m) => {
                let v = validator(doc, &m["schema"]);
                out.extend(
                    v.iter_errors(&answer.body)
                        .map(|e| format!("body at {}: {e}", e.instance_path().as_str())),
                );
                if media == "application/problem+json" && answer.body["status"] != status {
                    out.push(format!(
                        "problem status {} in the body",
                        answer.body["status"]
                    ));
                }
            }
            None => out.push(format!(
                "media type {media:?} is not documented (documented: {:?})",
                content.keys().collect::<Vec<_>>()
            )),
        },
        None => {
            if !answer.body.is_null() || !media.is_empty() {
                out.push(format!(
                    "documented without a body, got {media:?} {}",
                    answer.body
                ));
            }
        }
    }
    for (name, header) in resp
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let header = deref(doc, header);
        let value = answer.headers.get(name.to_ascii_lowercase().as_str());
        let Some(value) = value else {
            if header["required"] == true {
                out.push(format!("required header {name} is missing"));
            }
            continue;
        };
        let text = value.to_str().unwrap_or("");
        let schema = &header["schema"];
        let instance = if schema["type"] == "integer" {
            match text.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => {
                    out.push(format!("header {name}: {text:?} is not an integer"));
                    continue;
                }
            }
        } else {
            json!(text)
        };
        let v = validator(doc, schema);
        out.extend(
            v.iter_errors(&instance)
                .map(|e| format!("header {name} {text:?}: {e}")),
        );
    }
    out
}

mod accepted;
mod bodies;
mod cases;
mod federation_flow;
mod flow;
mod harness;
mod requests;
mod responses;
mod routes;

use self::{bodies::*, cases::*, flow::*, harness::*, requests::*};
