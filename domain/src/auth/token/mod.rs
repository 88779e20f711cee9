//! JWTs (RS256 by default, HS256 for older deployments; each `kid` pinned to its key's
//! algorithm) and opaque session tokens (256 random bits, stored only as an HMAC).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    jwks,
    rsa::{RsaKey, RsaPublicKey},
    seal::SealKeys,
};
use crate::{
    claims::{Grants, RESERVED_CLAIMS},
    config::{JwtKey, KeySet, Secret},
    credential::Assurance,
    otp::CodeHasher,
    types::UserId,
};

/// Clock skew tolerated on `exp` and `nbf` (RFC 8725 advises keeping it small).
pub const LEEWAY_SECS: u64 = 60;

/// Tokens whose signature one key set remembers having verified (see [`TokenKeys::check`]).
/// About 200 bytes each; at the limit the memory is emptied and starts again.
pub const VERIFIED_TOKENS_REMEMBERED: usize = 1024;

/// The claims every token carries; all are required and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id, 24 hex digits.
    pub sub: String,
    /// Session id the token belongs to.
    pub sid: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// How the session's user authenticated (RFC 8176 values: `pwd`, `otp`, `hwk`, `mfa`).
    /// Absent from tokens of an earlier release, which read as a password sign-in.
    #[serde(default = "password_amr")]
    pub amr: Vec<String>,
    /// Authenticator assurance level: 1, or 2 with a second factor.
    #[serde(default = "aal1")]
    pub aal: u8,
    /// Unix seconds of the last authentication (0 in an earlier release's tokens).
    #[serde(default)]
    pub auth_time: u64,
    /// The levels reached (`aal1`, `aal1 aal2`) and the account's roles as scopes
    /// (`role:editor`): what API Gateway's JWT authorizer checks against a route's
    /// `AuthorizationScopes`.
    #[serde(default)]
    pub scope: String,
    /// The account's roles (`app_metadata.roles`); absent when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Claims mapped from `app_metadata` by `TOKEN_CLAIMS` (never a reserved name).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn password_amr() -> Vec<String> {
    vec!["pwd".to_owned()]
}

const fn aal1() -> u8 {
    1
}

/// Keys prepared once per key set: verifying keys by `kid`, the public keys to publish, and
/// the session HMAC keys.
pub struct TokenKeys {
    kid: String,
    signing: Signing,
    /// Verifying keys by `kid`, each with the one algorithm it verifies.
    decoding: HashMap<String, VerifyingKey>,
    /// RSA public keys in publishing order (signing key first), by `kid`.
    public: Vec<(String, RsaPublicKey)>,
    session_current: Secret,
    session_previous: Option<Secret>,
    /// The AWSPENDING version's session key: another instance may already use it.
    session_next: Option<Secret>,
    audience: String,
    ttl: Duration,
    /// Tokens verified under these keys (signature, algorithm, `typ`, `kid`, `crit`, `aud`),
    /// by the SHA-256 of the whole token: a client sends one access token with every request
    /// for its lifetime, and an RSA verify costs tens of µs. New keys (a refresh) start empty,
    /// so a retired key's tokens are checked, and refused, again. What can change while a
    /// token is remembered (the time, the issuer asked for) is checked on every use.
    verified: Mutex<HashMap<[u8; 32], Claims>>,
    /// Keys that seal secrets the service reads back (TOTP seeds).
    seal: SealKeys,
}

/// A key that verifies tokens, and so the algorithm it verifies (RFC 8725 §3.1: the key
/// decides the algorithm, never the token).
enum VerifyingKey {
    Hs256(Secret),
    Rs256(RsaPublicKey),
}

/// The current key, ready to sign.
enum Signing {
    Hs256(EncodingKey),
    Rs256(Arc<RsaKey>),
}

/// The token header this API writes (members in jsonwebtoken's order).
#[derive(Serialize)]
struct JwsHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

type HmacSha256 = Hmac<Sha256>;

/// Why [`TokenKeys::check`] refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Well-formed, but signed under a `kid` these keys do not hold: after a rotation another
    /// instance may already sign with it, so the caller may refresh the keys and try again.
    UnknownKid,
    /// Anything else: malformed, wrong algorithm, bad signature, claims out of range.
    Invalid,
}

impl TokenKeys {
    /// Prepares keys for `audience` with tokens living `ttl`. The issuer is the caller's to
    /// name per token (it may be the URL each request came in on).
    pub fn new(keys: &KeySet, audience: &str, ttl: Duration) -> Self {
        super::provider::install();
        let mut decoding = HashMap::new();
        let mut public = Vec::new();
        // Current last, so it wins should another version carry the same kid.
        for version in [&keys.previous, &keys.next]
            .into_iter()
            .flatten()
            .chain([&keys.current])
        {
            let entry = match &version.jwt {
                JwtKey::Hs256(secret) => VerifyingKey::Hs256(secret.clone()),
                JwtKey::Rs256(rsa) => {
                    let key = rsa.public();
                    public.push((version.kid.clone(), key.clone()));
                    VerifyingKey::Rs256(key.clone())
                }
            };
            decoding.insert(version.kid.clone(), entry);
        }
        public.reverse();
        let signing = match &keys.current.jwt {
            JwtKey::Hs256(secret) => Signing::Hs256(EncodingKey::from_secret(secret.expose())),
            JwtKey::Rs256(rsa) => Signing::Rs256(Arc::clone(rsa)),
        };
        Self {
            kid: keys.current.kid.clone(),
            signing,
            decoding,
            public,
            session_current: keys.current.session.clone(),
            session_previous: keys.previous.as_ref().map(|p| p.session.clone()),
            session_next: keys.next.as_ref().map(|n| n.session.clone()),
            audience: audience.to_owned(),
            ttl,
            verified: Mutex::new(HashMap::new()),
            seal: SealKeys::new(keys),
        }
    }

    /// The keys sealing secrets the service reads back.
    pub fn seal_keys(&self) -> &SealKeys {
        &self.seal
    }

    /// The JWK Set of the RSA keys that verify (signing key first); empty under HS256.
    pub fn jwks(&self) -> serde_json::Value {
        jwks::jwks(self.public.iter().map(|(kid, key)| (kid.as_str(), key)))
    }

    /// The algorithm new tokens are signed with.
    pub fn algorithm(&self) -> &'static str {
        match self.signing {
            Signing::Hs256(_) => "HS256",
            Signing::Rs256(_) => "RS256",
        }
    }

    /// Lifetime of issued JWTs.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The claims of a token for `user` in session `sid` at `now` (see [`Self::issue_for`]).
    fn claims_for(
        &self,
        issuer: &str,
        user: &UserId,
        sid: &str,
        now: u64,
        assurance: &Assurance,
        grants: &Grants,
    ) -> Claims {
        let mut scope = assurance.scope().to_owned();
        for s in &grants.scopes {
            scope.push(' ');
            scope.push_str(s);
        }
        Claims {
            amr: assurance.amr.clone(),
            aal: assurance.aal(),
            auth_time: u64::try_from(assurance.auth_time).unwrap_or_default(),
            scope,
            roles: grants.roles.clone(),
            extra: grants
                .claims
                .iter()
                .filter(|(k, _)| !RESERVED_CLAIMS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sub: user.to_hex(),
            sid: sid.to_owned(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.ttl.as_secs()),
            iss: issuer.to_owned(),
            aud: self.audience.clone(),
        }
    }

    /// The length of the token [`Self::issue_for`] would sign, without signing it (the
    /// signature's length is the key's: 32 bytes for HS256, the modulus for RS256): what an
    /// operator's change of claims is checked against, in a function that never signs.
    pub fn encoded_len(
        &self,
        issuer: &str,
        user: &UserId,
        sid: &str,
        now: u64,
        assurance: &Assurance,
        grants: &Grants,
    ) -> Result<usize, TokenError> {
        let claims = self.claims_for(issuer, user, sid, now, assurance, grants);
        let claims = serde_json::to_vec(&claims).map_err(|e| TokenError::Signing(e.to_string()))?;
        let (alg, sig) = match &self.signing {
            Signing::Hs256(_) => ("HS256", 32),
            Signing::Rs256(key) => ("RS256", key.public().n.len()),
        };
        let header = self.header(alg)?;
        let b64 = |n: usize| (n * 4).div_ceil(3);
        Ok(b64(header.len()) + 1 + b64(claims.len()) + 1 + b64(sig))
    }

    /// The JOSE header this API writes for `alg` (members in jsonwebtoken's order, so an
    /// HS256 header is the one jsonwebtoken writes).
    fn header(&self, alg: &str) -> Result<Vec<u8>, TokenError> {
        serde_json::to_vec(&JwsHeader {
            typ: "JWT",
            alg,
            kid: &self.kid,
        })
        .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Signs a JWT from `issuer` for `user` in session `sid`, issued at `now` (Unix seconds),
    /// for a password sign-in at `now`.
    pub fn issue(
        &self,
        issuer: &str,
        user: &UserId,
        sid: &str,
        now: u64,
    ) -> Result<String, TokenError> {
        let at = i64::try_from(now).unwrap_or(i64::MAX);
        self.issue_for(
            issuer,
            user,
            sid,
            now,
            &Assurance::single("pwd", at),
            &Grants::default(),
        )
    }

    /// Signs a JWT from `issuer` for `user` in session `sid`, issued at `now` (Unix seconds),
    /// carrying what the session's authentication proved and what the account is granted
    /// (its roles, as claims and scopes, and its mapped claims; a reserved name among those
    /// is dropped, never written over the token's own).
    pub fn issue_for(
        &self,
        issuer: &str,
        user: &UserId,
        sid: &str,
        now: u64,
        assurance: &Assurance,
        grants: &Grants,
    ) -> Result<String, TokenError> {
        let claims = self.claims_for(issuer, user, sid, now, assurance, grants);
        let failed = |e: &dyn std::fmt::Display| TokenError::Signing(e.to_string());
        match &self.signing {
            Signing::Hs256(key) => {
                let mut header = Header::new(Algorithm::HS256);
                header.typ = Some("JWT".to_owned());
                header.kid = Some(self.kid.clone());
                jsonwebtoken::encode(&header, &claims, key).map_err(|e| failed(&e))
            }
            Signing::Rs256(key) => {
                let header = self.header("RS256")?;
                let claims = serde_json::to_vec(&claims).map_err(|e| failed(&e))?;
                let input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(header),
                    URL_SAFE_NO_PAD.encode(claims)
                );
                let sig = key
                    .sign(input.as_bytes())
                    .map_err(|_| failed(&"RSA signing failed"))?;
                Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
            }
        }
    }

    /// Verifies signature, algorithm, `typ`, `kid`, issuer (`issuer`), audience and time
    /// claims at `now`.
    pub fn verify(&self, token: &str, now: u64, issuer: &str) -> Result<Claims, TokenError> {
        self.check(token, now, issuer)
            .map_err(|_| TokenError::Refused)
    }

    /// True when tokens signed under `kid` can be verified with these keys.
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.decoding.contains_key(kid)
    }

    /// [`Self::verify`], telling a `kid` these keys do not hold (which a key refresh may fix)
    /// from every other refusal (which it cannot).
    pub fn check(&self, token: &str, now: u64, issuer: &str) -> Result<Claims, Refusal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let remembered = self
            .verified
            .lock()
            .ok()
            .and_then(|m| m.get(&digest).cloned());
        if let Some(claims) = remembered {
            return self.current(claims, now, issuer);
        }
        let claims = self.check_signed(token)?;
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= VERIFIED_TOKENS_REMEMBERED {
                m.clear();
            }
            m.insert(digest, claims.clone());
        }
        self.current(claims, now, issuer)
    }

    /// Everything about `token` that depends only on its bytes and these keys: three
    /// base64url parts; a header with `alg` HS256 or RS256, `typ` JWT, a `kid` these keys hold
    /// for that very algorithm and no `crit`; the signature; every claim present and typed;
    /// the audience. Each part is decoded and parsed once (jsonwebtoken's decode parsed the
    /// header three times and the claims twice: a third of a first-seen RS256 verify).
    fn check_signed(&self, token: &str) -> Result<Claims, Refusal> {
        let mut parts = token.split('.');
        let (Some(head), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Invalid);
        };
        let b64 = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::Invalid);
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&b64(head)?).map_err(|_| Refusal::Invalid)?;
        let member = |name: &str| header.get(name).and_then(serde_json::Value::as_str);
        // `crit` lists extensions the recipient must understand (RFC 7515 §4.1.11); this API
        // understands none.
        let alg = member("alg").ok_or(Refusal::Invalid)?;
        if header.contains_key("crit")
            || !matches!(alg, "HS256" | "RS256")
            || member("typ") != Some("JWT")
        {
            return Err(Refusal::Invalid);
        }
        let kid = member("kid").ok_or(Refusal::Invalid)?;
        let key = self.decoding.get(kid).ok_or(Refusal::UnknownKid)?;
        let signed = &token[..head.len() + 1 + payload.len()];
        let signature = b64(signature)?;
        // Pinning: the key named decides the algorithm, never the token (RFC 8725 §3.1).
        let genuine = match (alg, key) {
            ("HS256", VerifyingKey::Hs256(secret)) => {
                mac(secret, signed).verify_slice(&signature).is_ok()
            }
            ("RS256", VerifyingKey::Rs256(public)) => public.verify(signed.as_bytes(), &signature),
            _ => false,
        };
        if !genuine {
            return Err(Refusal::Invalid);
        }
        let claims: Claims =
            serde_json::from_slice(&b64(payload)?).map_err(|_| Refusal::Invalid)?;
        if claims.aud != self.audience {
            return Err(Refusal::Invalid);
        }
        Ok(claims)
    }

    /// The checks of signed claims that depend on the moment and the request: time claims
    /// at `now`, the issuer, a well-formed subject.
    fn current(&self, c: Claims, now: u64, issuer: &str) -> Result<Claims, Refusal> {
        // Claims are attacker-sized numbers: saturate, never overflow (a debug build panics).
        let skewed = now.saturating_add(LEEWAY_SECS);
        // No token of ours outlives the TTL: a later `exp` was not issued under these settings.
        let latest_exp = skewed.saturating_add(self.ttl.as_secs());
        if c.exp.saturating_add(LEEWAY_SECS) <= now
            || c.exp > latest_exp
            || c.nbf > skewed
            || c.iat > skewed
        {
            return Err(Refusal::Invalid);
        }
        if c.iss != issuer || UserId::parse_hex(&c.sub).is_none() {
            return Err(Refusal::Invalid);
        }
        Ok(c)
    }

    /// True when `token`'s header names RS256: the only algorithm API Gateway's JWT
    /// authorizer (which the dev server stands in for) accepts.
    pub fn is_rs256(token: &str) -> bool {
        jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::RS256)
    }

    /// The digest stored for a session token, under the current session key.
    pub fn session_digest(&self, token: &str) -> String {
        digest(&self.session_current, token)
    }

    /// The digest stored for a refresh token's secret part.
    pub fn refresh_digest(&self, secret: &str) -> String {
        let mut m = mac(&self.session_current, "refresh/v1:");
        m.update(secret.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }

    /// True when `secret` has `stored` as its refresh digest under the current, next or
    /// previous session key. Constant-time.
    pub fn refresh_matches(&self, secret: &str, stored: &str) -> bool {
        let Ok(stored) = URL_SAFE_NO_PAD.decode(stored) else {
            return false;
        };
        std::iter::once(&self.session_current)
            .chain(self.session_next.as_ref())
            .chain(self.session_previous.as_ref())
            .any(|key| {
                let mut m = mac(key, "refresh/v1:");
                m.update(secret.as_bytes());
                m.verify_slice(&stored).is_ok()
            })
    }

    /// The secret that replaces `secret` on rotation: derived, not drawn, so two concurrent
    /// refreshes of one token (a client retrying) compute the same successor.
    pub fn refresh_successor(&self, secret: &str) -> String {
        let mut m = mac(&self.session_current, "refresh-next/v1:");
        m.update(secret.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }

    /// One-time-code hashers: under the current session key (hashes and verifies) and the
    /// previous one (verifies, during a rotation), as for session tokens. A code sent just
    /// before a rotation, or by an instance that saw it first, still verifies.
    pub fn code_hashers(&self) -> (CodeHasher, Option<CodeHasher>) {
        (
            CodeHasher::derived_from(&self.session_current),
            self.session_previous.as_ref().map(CodeHasher::derived_from),
        )
    }

    /// A short keyed tag of `value` (a phone) for audit lines: lines about one phone can be
    /// joined without the log holding the number. Keyed with the current session key, so tags
    /// change when the keys rotate.
    pub fn audit_tag(&self, value: &str) -> String {
        let mut m = mac(&self.session_current, "audit-tag/v1:");
        m.update(value.as_bytes());
        m.finalize().into_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The MAC of a device token's `message` under the current session key
    /// (`auth::device`), domain-separated from every other use of the key.
    pub fn device_mac(&self, message: &[u8]) -> [u8; 32] {
        let mut m = mac(&self.session_current, "device-token/v1:");
        m.update(message);
        m.finalize().into_bytes().into()
    }

    /// True when `tag` is (the leftmost bytes, at least 16, of) `message`'s device MAC under
    /// the current, next or previous session key (a device token outlives a key rotation),
    /// compared in constant time.
    pub fn device_mac_matches(&self, message: &[u8], tag: &[u8]) -> bool {
        std::iter::once(&self.session_current)
            .chain(self.session_next.as_ref())
            .chain(self.session_previous.as_ref())
            .any(|key| {
                let mut m = mac(key, "device-token/v1:");
                m.update(message);
                tag.len() >= 16 && m.verify_truncated_left(tag).is_ok()
            })
    }

    /// True when `token` hashes to `stored` under the current, next or previous session key.
    pub fn session_matches(&self, token: &str, stored: &str) -> bool {
        let Ok(stored) = URL_SAFE_NO_PAD.decode(stored) else {
            return false;
        };
        std::iter::once(&self.session_current)
            .chain(self.session_next.as_ref())
            .chain(self.session_previous.as_ref())
            .any(|key| mac(key, token).verify_slice(&stored).is_ok())
    }
}

fn mac(key: &Secret, token: &str) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key.expose())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(token.as_bytes());
    m
}

fn digest(key: &Secret, token: &str) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, token).finalize().into_bytes())
}

/// Why a token could not be made or was not accepted: this layer's own error, with no HTTP
/// in it (the service maps it, and the edge answers).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token is not one of ours, or not valid now (signature, algorithm, claims, time).
    #[error("token refused")]
    Refused,
    #[error("jwt signing failed: {0}")]
    Signing(String),
    #[error("OS random source failed: {0}")]
    Random(String),
}

/// 256 random bits, base64url without padding (43 characters).
pub fn new_session_token() -> Result<String, TokenError> {
    random_b64::<32>()
}

/// A session id: 128 random bits, base64url.
pub fn new_session_id() -> Result<String, TokenError> {
    random_b64::<16>()
}

fn random_b64<const N: usize>() -> Result<String, TokenError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod timing;
