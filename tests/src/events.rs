//! API Gateway HTTP API (payload 2.0) events from `events/`, and builders that change them.

use super::*;

/// An event from `events/<name>.json`.
pub fn event(name: &str) -> Value {
    let path = root().join("events").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Sets the event's JSON body.
pub fn with_body(mut ev: Value, body: &Value) -> Value {
    ev["body"] = Value::String(body.to_string());
    ev
}

/// Sets the event's raw body text.
pub fn with_raw_body(mut ev: Value, body: &str) -> Value {
    ev["body"] = Value::String(body.to_owned());
    ev
}

/// Sets (or with `None` removes) one header.
pub fn with_header(mut ev: Value, name: &str, value: Option<&str>) -> Value {
    let headers = ev["headers"].as_object_mut().unwrap();
    match value {
        Some(v) => headers.insert(name.to_owned(), Value::String(v.to_owned())),
        None => headers.remove(name),
    };
    ev
}

/// Sets the `Authorization` and `Session-Token` headers.
pub fn with_auth(ev: Value, authorization: &str, session_token: &str) -> Value {
    let ev = with_header(ev, "authorization", Some(authorization));
    with_header(ev, "session-token", Some(session_token))
}

/// Sets the headers of `login` with the JWT as a Bearer token.
pub fn with_bearer(ev: Value, login: &Login) -> Value {
    with_auth(ev, &format!("Bearer {}", login.token), &login.session_token)
}

/// Removes the `Authorization` and `Session-Token` headers.
pub fn without_auth(ev: Value) -> Value {
    with_header(
        with_header(ev, "authorization", None),
        "session-token",
        None,
    )
}

/// Sets the event's JSON body and `Content-Type: application/json`.
pub fn with_json_body(ev: Value, body: &Value) -> Value {
    with_header(
        with_body(ev, body),
        "content-type",
        Some("application/json"),
    )
}

/// The event in `events/` whose `routeKey` is "METHOD path".
/// The issuer of tokens issued through the sample events: `https://` + their `domainName`,
/// as a deployed API without `JWT_ISSUER` names itself.
pub const EVENT_ISSUER: &str = "https://abc123.execute-api.us-east-1.amazonaws.com";

pub fn event_for(method: &str, path: &str) -> Value {
    let key = format!("{method} {path}");
    for entry in std::fs::read_dir(root().join("events")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let ev: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            if ev["routeKey"] == key.as_str() {
                return ev;
            }
        }
    }
    panic!("no event in events/ has routeKey {key}")
}

/// (binary, METHOD, path) for every HttpApi event in `template.yaml`, read line by line: each
/// function's `Binary:` comes before its `Events:`, and before the `RouteKey:` of a route
/// written out as an `AWS::ApiGatewayV2::Route` (which the JWT authorizer test ties to it).
pub fn template_routes() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let mut routes = Vec::new();
    let (mut binary, mut path) = (String::new(), String::new());
    for line in text.lines().map(str::trim) {
        if let Some(b) = line.strip_prefix("Binary:") {
            binary = b.trim().to_owned();
        } else if let Some(p) = line.strip_prefix("Path:") {
            path = p.trim().to_owned();
        } else if let Some(m) = line.strip_prefix("Method:") {
            routes.push((binary.clone(), m.trim().to_uppercase(), path.clone()));
        } else if let Some((m, p)) = line
            .strip_prefix("RouteKey:")
            .and_then(|k| k.trim().split_once(' '))
        {
            routes.push((binary.clone(), m.to_uppercase(), p.trim().to_owned()));
        }
    }
    routes
}
