//! The token keys in force, cached with a TTL and refreshed from a [`KeySource`] without
//! making a request wait. Where the keys come from (Secrets Manager, in the adapters crate) is
//! wiring: the domain sees this trait only, so it carries no AWS SDK.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;

use crate::{
    auth::token::{Claims, Refusal, TokenError, TokenKeys},
    config::{ConfigError, KeySet, Settings},
};

/// Somewhere the signing keys can be read again (a rotating secret).
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The keys as they are now.
    async fn fetch_keys(&self) -> Result<KeySet, ConfigError>;
    /// The source's name for logs (a secret's id; never a value).
    fn name(&self) -> &str;
}

/// Least time between two refreshes forced by an unknown `kid`, per instance: tokens naming
/// keys that do not exist must not turn into a flood of Secrets Manager reads.
pub const FORCED_REFRESH_INTERVAL_SECS: i64 = 5;

/// The token keys in force, refreshed from its source after a TTL without making a
/// request wait: the request that notices staleness starts a background refresh and goes on
/// with the cached keys. A token whose `kid` the cache does not hold was most likely signed by
/// an instance that saw a rotation first; [`KeyCache::verify`] then refreshes at once
/// (single-flight, rate-limited) instead of refusing it until the TTL passes.
pub struct KeyCache {
    current: RwLock<Arc<TokenKeys>>,
    source: Option<Arc<dyn KeySource>>,
    loaded_at: AtomicI64,
    refreshing: AtomicBool,
    /// One secret read at a time; waiters reuse the result of the read they waited for.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Bumped by every successful refresh.
    generation: AtomicU64,
    /// When the last refresh forced by an unknown `kid` started.
    forced_at: AtomicI64,
    /// Secret reads made by refreshes (not the cold start), for tests and diagnostics.
    reads: AtomicU64,
    ttl_secs: i64,
    audience: String,
    jwt_ttl: Duration,
}

impl KeyCache {
    /// Keys from `settings`; with a `source`, refreshed every `ttl`.
    pub fn new(
        settings: &Settings,
        source: Option<Arc<dyn KeySource>>,
        ttl: Duration,
        now: i64,
    ) -> Self {
        let keys = TokenKeys::new(&settings.keys, &settings.audience, settings.jwt_ttl);
        Self {
            current: RwLock::new(Arc::new(keys)),
            source,
            loaded_at: AtomicI64::new(now),
            refreshing: AtomicBool::new(false),
            fetch_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            forced_at: AtomicI64::new(i64::MIN),
            reads: AtomicU64::new(0),
            ttl_secs: ttl.as_secs() as i64,
            audience: settings.audience.clone(),
            jwt_ttl: settings.jwt_ttl,
        }
    }

    /// The cached keys. Never blocks on the network.
    pub fn get(self: &Arc<Self>, now: i64) -> Arc<TokenKeys> {
        if self.source.is_some()
            && now.saturating_sub(self.loaded_at.load(Ordering::Relaxed)) >= self.ttl_secs
            && !self.refreshing.swap(true, Ordering::AcqRel)
        {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let _one_at_a_time = this.fetch_lock.lock().await;
                this.refresh(now).await;
                this.refreshing.store(false, Ordering::Release);
            });
        }
        self.cached()
    }

    fn cached(&self) -> Arc<TokenKeys> {
        self.current
            .read()
            .map(|k| Arc::clone(&k))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Verifies `jwt` at `now` and returns its claims with the keys that verified it (which
    /// also check the session token). A token naming a `kid` the cache lacks makes the cache
    /// re-read the secret first: at most one read in flight, and at most one such read per
    /// [`FORCED_REFRESH_INTERVAL_SECS`]; a request arriving while a read is in flight waits
    /// for it rather than starting another. The token must name `issuer` as its `iss`.
    pub async fn verify(
        self: &Arc<Self>,
        jwt: &str,
        now: i64,
        issuer: &str,
    ) -> Result<(Claims, Arc<TokenKeys>), TokenError> {
        let at = now.max(0) as u64;
        let keys = self.get(now);
        match keys.check(jwt, at, issuer) {
            Ok(claims) => return Ok((claims, keys)),
            Err(Refusal::UnknownKid) if self.source.is_some() => {}
            Err(_) => return Err(TokenError::Refused),
        }
        let seen = self.generation.load(Ordering::Acquire);
        {
            let _one_at_a_time = self.fetch_lock.lock().await;
            // A refresh that finished while this request waited is as good as its own.
            if self.generation.load(Ordering::Acquire) == seen {
                let last = self.forced_at.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= FORCED_REFRESH_INTERVAL_SECS {
                    self.forced_at.store(now, Ordering::Relaxed);
                    // Boxed: the SDK call's state machine is deep, and inlining it into every
                    // authenticated request's future would grow them all for a rare path.
                    Box::pin(self.refresh(now)).await;
                }
            }
        }
        let keys = self.cached();
        let claims = keys.verify(jwt, at, issuer)?;
        Ok((claims, keys))
    }

    /// Secret reads made by refreshes since start (cold-start read excluded).
    pub fn secret_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Re-reads the secret now. On failure the old keys stay and the next TTL retries.
    pub async fn refresh(&self, now: i64) {
        let Some(source) = &self.source else { return };
        self.reads.fetch_add(1, Ordering::Relaxed);
        let fetched = source
            .fetch_keys()
            .await
            .and_then(|k| k.check_signing_key().map(|()| k));
        match fetched {
            Ok(f) => {
                let keys = Arc::new(TokenKeys::new(&f, &self.audience, self.jwt_ttl));
                match self.current.write() {
                    Ok(mut slot) => *slot = keys,
                    Err(p) => *p.into_inner() = keys,
                }
                self.loaded_at.store(now, Ordering::Relaxed);
                self.generation.fetch_add(1, Ordering::AcqRel);
                tracing::info!(
                    source = source.name(),
                    kid = f.current.kid,
                    "signing keys refreshed"
                );
            }
            Err(e) => {
                // Retry in 30 s rather than on every request while Secrets Manager is down.
                self.loaded_at.store(
                    now - self.ttl_secs + 30.min(self.ttl_secs),
                    Ordering::Relaxed,
                );
                tracing::warn!(error = %e, "secret refresh failed; keeping cached keys");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        auth::rsa::RsaKey,
        config::{JwtKey, KeyVersion, Secret, Vars},
    };

    const JWK_B: &str = include_str!("../../tests/fixtures/rsa-b.jwk.json");
    const PEM_A: &str = include_str!("../../tests/fixtures/rsa-a.pem");

    fn version(text: &str) -> KeyVersion {
        let key = RsaKey::parse(text).unwrap();
        KeyVersion {
            kid: key.kid().to_owned(),
            jwt: JwtKey::Rs256(Arc::new(key)),
            session: Secret::new(b"session-key-0123456789abcdef0123456789".to_vec()),
        }
    }

    /// A source whose next read yields `keys`.
    struct Fixed(KeySet);

    #[async_trait]
    impl KeySource for Fixed {
        async fn fetch_keys(&self) -> Result<KeySet, ConfigError> {
            Ok(self.0.clone())
        }
        fn name(&self) -> &str {
            "fixed"
        }
    }

    #[tokio::test]
    async fn a_rotation_to_an_unusable_signing_key_keeps_the_keys_in_force() {
        let vars = Vars::from_pairs([
            ("JWT_PRIVATE_KEY", PEM_A),
            (
                "SESSION_SECRET_KEY",
                "session-key-0123456789abcdef0123456789",
            ),
        ]);
        let settings = Settings::from_vars(&vars).unwrap();
        let before = settings.keys.current.kid.clone();
        // Sound structure and public half, wrong prime: it parses; ring refuses it.
        let mut jwk: serde_json::Value = serde_json::from_str(JWK_B).unwrap();
        jwk["p"] = "AQAB".into();
        let broken = KeySet {
            current: version(&jwk.to_string()),
            previous: None,
            next: None,
        };
        let source: Arc<dyn KeySource> = Arc::new(Fixed(broken));
        let cache = Arc::new(KeyCache::new(
            &settings,
            Some(source),
            Duration::from_secs(1),
            0,
        ));
        cache.refresh(10).await;
        assert_eq!(cache.secret_reads(), 1);
        let kept = cache.get(10);
        assert!(kept.knows_kid(&before), "the old key must stay in force");
        // A usable key is taken.
        let good = KeySet {
            current: version(JWK_B),
            previous: None,
            next: None,
        };
        let cache = Arc::new(KeyCache::new(
            &settings,
            Some(Arc::new(Fixed(good.clone()))),
            Duration::from_secs(1),
            0,
        ));
        cache.refresh(10).await;
        assert!(cache.get(10).knows_kid(&good.current.kid));
    }
}
