//! The JSON Lines format: one user per line as exported, and the shapes an import accepts.
//!
//! Export writes version 2: `{"_id": {"$oid"}, "v": 2, first_name, middle_name?, last_name,
//! identifiers: [{kind, value, verified_at}], credentials: [{id, kind, label, hash,
//! created_at, last_used_at}], disabled, created_at, updated_at}` and, for a previous
//! release's tool, `phone`, `phone_verified` and `password_hash`. Import takes that, version 1
//! lines (the same without `v`, `identifiers` and `credentials`, which is also what
//! `mongoexport` writes for an older collection), the Flask service's documents as
//! `mongoexport` writes them (`password` instead of `password_hash`, `phone` as typed, no
//! timestamps) and lines from elsewhere with no `_id` at all.

use domain::{
    identity::Identifier,
    service::migration::{ImportIdentifier, ImportRecord},
    store::UserRecord,
};
use serde_json::{Value, json};

/// One exported user, version 2: its identifiers and credentials as lists (with their
/// times), plus `phone`, `phone_verified` and `password_hash` so a previous release's tool
/// imports it too. Contains the password hash.
pub fn export_line(u: &UserRecord) -> Value {
    let identifiers: Vec<Value> = u
        .identifiers
        .iter()
        .filter_map(|r| {
            let value = match &r.identifier {
                Identifier::Phone(p) => p.as_str(),
                Identifier::Email(e) => e.as_str(),
                Identifier::Federated { .. } => return None,
            };
            Some(json!({
                "kind": r.identifier.kind().as_str(),
                "value": value,
                "verified_at": r.verified_at,
            }))
        })
        .collect();
    let credentials: Vec<Value> = u
        .credentials
        .iter()
        .map(|c| {
            json!({
                "id": c.record.id,
                "kind": c.record.kind.as_str(),
                "label": c.record.label,
                "hash": c.secret.expose(),
                "created_at": c.record.created_at,
                "last_used_at": c.record.last_used_at,
            })
        })
        .collect();
    let mut v = json!({
        "_id": {"$oid": u.id.to_hex()},
        "v": 2,
        "first_name": u.first_name.as_str(),
        "last_name": u.last_name.as_str(),
        "identifiers": identifiers,
        "credentials": credentials,
        "disabled": u.disabled,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "password_hash": u.password_hash(),
    });
    if let Some(p) = u.phone() {
        v["phone"] = json!(p.as_str());
        v["phone_verified"] = json!(u.phone_verified());
    }
    if let Some(m) = &u.middle_name {
        v["middle_name"] = Value::String(m.as_str().to_owned());
    }
    v
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // A phone stored as a number, plain or as extended JSON.
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o
            .get("$numberLong")
            .or_else(|| o.get("$numberInt"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| text(v).and_then(|s| s.parse().ok()))
}

/// An import record from one line, or why the line cannot be one.
pub fn import_record(v: &Value) -> Result<ImportRecord, String> {
    let o = v.as_object().ok_or("line is not a JSON object")?;
    let id = match o.get("_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(m)) => Some(
            m.get("$oid")
                .and_then(Value::as_str)
                .ok_or("_id: not an ObjectId")?
                .to_owned(),
        ),
        Some(_) => return Err("_id: not an ObjectId".to_owned()),
    };
    let field = |k: &str| o.get(k).and_then(text);
    let list = |k: &str| o.get(k).and_then(Value::as_array).into_iter().flatten();
    let identifiers = list("identifiers")
        .map(|i| ImportIdentifier {
            kind: i.get("kind").and_then(text).unwrap_or_default(),
            value: i.get("value").and_then(text).unwrap_or_default(),
            verified_at: i.get("verified_at").and_then(int),
        })
        .collect();
    let password =
        list("credentials").find(|c| c.get("kind").and_then(Value::as_str) == Some("password"));
    let at = |k: &str| password.and_then(|c| c.get(k)).and_then(int);
    Ok(ImportRecord {
        id,
        first_name: o
            .get("first_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        middle_name: o
            .get("middle_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        last_name: o
            .get("last_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        phone: field("phone"),
        password_hash: password
            .and_then(|c| c.get("hash"))
            .or_else(|| o.get("password_hash"))
            .or_else(|| o.get("password"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        disabled: o.get("disabled").and_then(Value::as_bool).unwrap_or(false),
        phone_verified: o.get("phone_verified").and_then(Value::as_bool),
        created_at: o.get("created_at").and_then(int),
        updated_at: o.get("updated_at").and_then(int),
        identifiers,
        password_created_at: at("created_at"),
        password_last_used_at: at("last_used_at"),
    })
}
