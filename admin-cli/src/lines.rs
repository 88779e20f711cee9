//! The JSON Lines format: one user per line as exported, and the shapes an import accepts.
//!
//! Export writes `{"_id": {"$oid"}, first_name, middle_name?, last_name, phone, password_hash,
//! disabled, created_at, updated_at}`, which is also what `mongoexport` writes for this
//! service's collection. Import also takes the Flask service's documents as `mongoexport`
//! writes them (`password` instead of `password_hash`, `phone` as typed, no timestamps) and
//! lines from elsewhere with no `_id` at all.

use domain::{service::migration::ImportRecord, store::UserRecord};
use serde_json::{Value, json};

/// One exported user. Contains the password hash.
pub fn export_line(u: &UserRecord) -> Value {
    let mut v = json!({
        "_id": {"$oid": u.id.to_hex()},
        "first_name": u.first_name.as_str(),
        "last_name": u.last_name.as_str(),
        "phone": u.phone.as_str(),
        "password_hash": u.password_hash,
        "disabled": u.disabled,
        "phone_verified": u.phone_verified,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    });
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
        password_hash: o
            .get("password_hash")
            .or_else(|| o.get("password"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        disabled: o.get("disabled").and_then(Value::as_bool).unwrap_or(false),
        phone_verified: o.get("phone_verified").and_then(Value::as_bool),
        created_at: o.get("created_at").and_then(int),
        updated_at: o.get("updated_at").and_then(int),
    })
}
