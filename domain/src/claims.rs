//! What an account says about itself beyond its identity, and what its access tokens say to
//! the rest of the app: `app_metadata` (set by operators only: roles, a tenant), `user_metadata`
//! (set by the user), and the claims and scopes the tokens carry from them. Both objects are
//! parsed once at the edge into [`Metadata`] (an object, within a size and depth limit, with
//! keys a MongoDB document can hold); the claims are computed from the account by
//! [`Grants::of`], so a token always says what the account says now.

use serde_json::{Map, Value};

use crate::config::{ConfigError, Vars};

/// Claims a token's own fields own: never taken from metadata or a hook.
pub const RESERVED_CLAIMS: [&str; 14] = [
    "sub",
    "sid",
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "amr",
    "aal",
    "auth_time",
    "scope",
    "roles",
    "typ",
];

/// How deep a metadata object may nest.
const MAX_DEPTH: usize = 8;

/// Why a metadata object was refused; the message names the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("is {size} bytes as JSON; at most {max}")]
    TooLarge { size: usize, max: usize },
    #[error("nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("has a key that is empty, starts with '$' or holds '.' or NUL")]
    BadKey,
    #[error("holds an integer beyond 64-bit signed range")]
    BadNumber,
    #[error(
        "`roles` must be an array of names (letters, digits, '_', '-', '.', ':'; at most 64 each, 32 in all)"
    )]
    BadRoles,
}

/// A metadata object as stored: a JSON object within the limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(Map<String, Value>);

fn keys_ok(v: &Value, depth: usize) -> Result<(), MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k.is_empty() || k.starts_with('$') || k.contains('.') || k.contains('\0') {
                    return Err(MetadataError::BadKey);
                }
                keys_ok(v, depth + 1)?;
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(|v| keys_ok(v, depth + 1)),
        // The store keeps 64-bit signed integers and doubles.
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Err(MetadataError::BadNumber),
        _ => Ok(()),
    }
}

/// A role name a scope can carry (no space, which separates scopes).
fn role_ok(r: &str) -> bool {
    (1..=64).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

impl Metadata {
    /// `value` as metadata of at most `max_bytes` of JSON.
    pub fn parse(value: Value, max_bytes: usize) -> Result<Self, MetadataError> {
        let Value::Object(map) = value else {
            return Err(MetadataError::NotAnObject);
        };
        let size = serde_json::to_vec(&map).map_or(usize::MAX, |b| b.len());
        if size > max_bytes {
            return Err(MetadataError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        let value = Value::Object(map);
        keys_ok(&value, 0)?;
        let Value::Object(map) = value else {
            return Err(MetadataError::NotAnObject);
        };
        Ok(Self(map))
    }

    /// As [`Metadata::parse`], and `roles`, if present, a list of role names (operators'
    /// metadata: the roles become claims and scopes).
    pub fn parse_app(value: Value, max_bytes: usize) -> Result<Self, MetadataError> {
        let m = Self::parse(value, max_bytes)?;
        if let Some(roles) = m.0.get("roles") {
            let ok = roles.as_array().is_some_and(|a| {
                a.len() <= 32 && a.iter().all(|r| r.as_str().is_some_and(role_ok))
            });
            if !ok {
                return Err(MetadataError::BadRoles);
            }
        }
        Ok(m)
    }

    /// What the store read back (already checked when it was written).
    pub fn stored(map: Map<String, Value>) -> Self {
        Self(map)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The roles of operators' metadata.
    pub fn roles(&self) -> Vec<String> {
        self.0
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|r| role_ok(r))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The claims settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimSettings {
    /// `TOKEN_CLAIMS`: keys of `app_metadata` copied into access tokens as claims of the same
    /// name (e.g. `tenant`); none is a reserved claim.
    pub mapped: Vec<String>,
    /// `ROLE_SCOPE_PREFIX`: each role `r` becomes the scope `<prefix>r` (default `role:`).
    pub role_scope_prefix: String,
    /// `METADATA_MAX_BYTES`: each metadata object's JSON size limit (default 4096).
    pub metadata_max_bytes: usize,
    /// `ACCESS_TOKEN_MAX_BYTES`: an access token over this is not issued (default 4096).
    pub token_max_bytes: usize,
}

impl Default for ClaimSettings {
    fn default() -> Self {
        Self {
            mapped: Vec::new(),
            role_scope_prefix: "role:".to_owned(),
            metadata_max_bytes: 4096,
            token_max_bytes: 4096,
        }
    }
}

impl ClaimSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let d = Self::default();
        let invalid = |name: &str, reason: &str| ConfigError::Invalid {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let mapped: Vec<String> = vars
            .get("TOKEN_CLAIMS")
            .map(|v| {
                v.split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for c in &mapped {
            if RESERVED_CLAIMS.contains(&c.as_str()) {
                return Err(invalid(
                    "TOKEN_CLAIMS",
                    "names a reserved claim (sub, sid, iss, aud, exp, iat, nbf, jti, amr, aal, auth_time, scope, roles, typ)",
                ));
            }
            if !role_ok(c) {
                return Err(invalid(
                    "TOKEN_CLAIMS",
                    "holds a name that is not a plain key",
                ));
            }
        }
        let prefix = vars
            .get("ROLE_SCOPE_PREFIX")
            .map(|p| p.trim().to_owned())
            .unwrap_or(d.role_scope_prefix);
        if prefix.contains(' ') {
            return Err(invalid("ROLE_SCOPE_PREFIX", "must not hold a space"));
        }
        let bytes = |name: &str, default: usize| -> Result<usize, ConfigError> {
            match vars.get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (256..=65_536).contains(n))
                    .ok_or_else(|| ConfigError::BadNumber {
                        name: name.to_owned(),
                    }),
            }
        };
        Ok(Self {
            mapped,
            role_scope_prefix: prefix,
            metadata_max_bytes: bytes("METADATA_MAX_BYTES", d.metadata_max_bytes)?,
            token_max_bytes: bytes("ACCESS_TOKEN_MAX_BYTES", d.token_max_bytes)?,
        })
    }
}

/// What an account's access tokens carry beyond identity and assurance: its roles (also as
/// scopes) and the claims `TOKEN_CLAIMS` maps from its `app_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub roles: Vec<String>,
    /// The roles as scopes (`role:editor`).
    pub scopes: Vec<String>,
    pub claims: Map<String, Value>,
}

impl Grants {
    /// The grants of an account with operators' metadata `app`.
    pub fn of(app: &Metadata, settings: &ClaimSettings) -> Self {
        let roles = app.roles();
        let scopes = roles
            .iter()
            .map(|r| format!("{}{r}", settings.role_scope_prefix))
            .collect();
        let claims = settings
            .mapped
            .iter()
            .filter_map(|k| app.as_map().get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        Self {
            roles,
            scopes,
            claims,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_is_an_object_within_its_limits_with_storable_keys() {
        let cases = [
            (json!({"a": 1, "b": {"c": [1, "x"]}}), None),
            (json!([1]), Some(MetadataError::NotAnObject)),
            (json!("x"), Some(MetadataError::NotAnObject)),
            (json!({"$set": 1}), Some(MetadataError::BadKey)),
            (json!({"a.b": 1}), Some(MetadataError::BadKey)),
            (json!({"": 1}), Some(MetadataError::BadKey)),
            (json!({"a": {"$where": 1}}), Some(MetadataError::BadKey)),
            (json!({"n": u64::MAX}), Some(MetadataError::BadNumber)),
            (json!({"n": -1.5, "m": i64::MIN}), None),
            (
                json!({"a": [[[[[[[[[[1]]]]]]]]]]}),
                Some(MetadataError::TooDeep),
            ),
            (
                json!({"a": "x".repeat(100)}),
                Some(MetadataError::TooLarge { size: 108, max: 64 }),
            ),
        ];
        for (v, want) in cases {
            let got = Metadata::parse(v.clone(), 64).err();
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn roles_are_names_and_become_scopes_and_mapped_claims_are_copied() {
        for bad in [
            json!({"roles": "editor"}),
            json!({"roles": ["an editor"]}),
            json!({"roles": [1]}),
        ] {
            assert_eq!(
                Metadata::parse_app(bad.clone(), 4096),
                Err(MetadataError::BadRoles),
                "{bad}"
            );
        }
        let app = Metadata::parse_app(
            json!({"roles": ["editor", "billing:read"], "tenant": "acme", "secret": 1}),
            4096,
        )
        .unwrap();
        let settings = ClaimSettings {
            mapped: vec!["tenant".into(), "absent".into()],
            ..ClaimSettings::default()
        };
        let g = Grants::of(&app, &settings);
        assert_eq!(g.roles, ["editor", "billing:read"]);
        assert_eq!(g.scopes, ["role:editor", "role:billing:read"]);
        assert_eq!(Value::Object(g.claims), json!({"tenant": "acme"}));
    }

    #[test]
    fn a_reserved_claim_cannot_be_mapped() {
        for (v, ok) in [
            ("tenant,plan", true),
            ("sub", false),
            ("tenant, scope", false),
        ] {
            let r = ClaimSettings::from_vars(&Vars::from_pairs([("TOKEN_CLAIMS", v)]));
            assert_eq!(r.is_ok(), ok, "{v}");
        }
    }
}
