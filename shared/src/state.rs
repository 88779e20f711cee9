//! Everything built once per cold start and shared by reference across requests.

use std::{sync::Arc, time::Duration};

use crate::{
    auth::token::TokenKeys,
    clock::{Clock, SystemClock},
    config::{ConfigError, Settings, Vars},
    schema::Schemas,
    secrets::{KeyCache, SecretSource},
    store::{
        Store, StoreError,
        memory::MemoryStore,
        mongo::{MongoOptions, MongoStore},
    },
    verification::{Verification, VerificationConfigError},
};

/// Why a process could not start. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("phone verification: {0}")]
    Verification(#[from] VerificationConfigError),
}

/// Which store backs the state; the dev server prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Mongo,
    Embedded,
}

/// Settings, store, compiled schemas and keys: the handlers' whole world.
pub struct State {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub store_kind: StoreKind,
    pub schemas: Schemas,
    pub keys: Arc<KeyCache>,
    pub clock: Arc<dyn Clock>,
    /// Phone verification: off, without a sender, unless set from variables.
    pub verification: Verification,
}

/// Default lifetime of cached secret values.
pub const SECRET_CACHE_TTL: Duration = Duration::from_secs(300);

impl State {
    /// Assembles a state from parts with fixed keys (tests pass their own store and clock).
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        store_kind: StoreKind,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, InitError> {
        Self::with_source(settings, store, store_kind, clock, None, SECRET_CACHE_TTL)
    }

    /// Assembles a state whose keys are refreshed from `source` every `ttl`.
    pub fn with_source(
        settings: Settings,
        store: Arc<dyn Store>,
        store_kind: StoreKind,
        clock: Arc<dyn Clock>,
        source: Option<SecretSource>,
        ttl: Duration,
    ) -> Result<Self, InitError> {
        let schemas = Schemas::new();
        let keys = Arc::new(KeyCache::new(&settings, source, ttl, clock.now()));
        let verification = Verification::off()?;
        Ok(Self {
            verification,
            settings,
            store,
            store_kind,
            schemas,
            keys,
            clock,
        })
    }

    /// This state with `verification` instead of its own (tests, the dev server).
    pub fn with_verification(mut self, verification: Verification) -> Self {
        self.verification = verification;
        self
    }

    /// One request's context over this state, at the clock's now, for `client`.
    pub fn ctx<'a>(&'a self, client: &'a crate::service::Client) -> crate::service::Ctx<'a> {
        crate::service::Ctx {
            store: self.store.as_ref(),
            keys: &self.keys,
            policy: &self.settings,
            now: self.clock.now(),
            client,
            verification: &self.verification,
        }
    }

    /// The token keys in force (refreshed in the background when a secret's TTL passes).
    pub fn tokens(&self) -> Arc<TokenKeys> {
        self.keys.get(self.clock.now())
    }

    /// Cold start of a Lambda function: settings from the environment or a secret, MongoDB
    /// required (`USER_API_EMBEDDED_STORE=1` lifts that for benchmarks that measure the
    /// database's share; a deployed function never sets it).
    pub async fn init() -> Result<Self, InitError> {
        let vars = Vars::from_env();
        let require_mongo = vars.get("USER_API_EMBEDDED_STORE") != Some("1");
        Self::load(&vars, require_mongo).await
    }

    /// Reads settings from `vars`: keys and Mongo URI from the Secrets Manager secret named by
    /// `SECRET_ID` when set, else from the variables themselves. Then builds the store.
    pub async fn load(vars: &Vars, require_mongo: bool) -> Result<Self, InitError> {
        Self::load_with_clock(vars, require_mongo, Arc::new(SystemClock)).await
    }

    /// [`State::load`] with a given clock (tests move time past the secret cache TTL).
    pub async fn load_with_clock(
        vars: &Vars,
        require_mongo: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, InitError> {
        Self::load_inner(vars, require_mongo, clock, false).await
    }

    /// The dev server's state: as [`State::load`], with the dev server's SMS defaults (the
    /// log sender, verification off unless `REQUIRE_PHONE_VERIFICATION=true`).
    pub async fn load_dev(vars: &Vars) -> Result<Self, InitError> {
        Self::load_inner(vars, false, Arc::new(SystemClock), true).await
    }

    async fn load_inner(
        vars: &Vars,
        require_mongo: bool,
        clock: Arc<dyn Clock>,
        dev: bool,
    ) -> Result<Self, InitError> {
        let (settings, source) = match vars.get("SECRET_ID") {
            Some(id) => {
                let source = SecretSource::new(id, vars).await?;
                let fetched = source.fetch().await?;
                // A URI in the secret wins; a plain MONGO_URI serves secrets that hold only keys.
                let uri = fetched.mongo_uri.or_else(|| {
                    vars.get("MONGO_URI")
                        .map(|u| crate::config::Secret::new(u.as_bytes()))
                });
                (Settings::with_keys(vars, fetched.keys, uri)?, Some(source))
            }
            None => (Settings::from_vars(vars)?, None),
        };
        if require_mongo && settings.mongo_uri.is_none() {
            return Err(ConfigError::Missing("MONGO_URI".to_owned()).into());
        }
        let ttl = match vars.get("SECRET_CACHE_TTL_SECONDS").map(str::parse::<u64>) {
            None => SECRET_CACHE_TTL,
            Some(Ok(n)) if n > 0 => Duration::from_secs(n),
            Some(_) => {
                return Err(ConfigError::BadNumber {
                    name: "SECRET_CACHE_TTL_SECONDS".into(),
                }
                .into());
            }
        };
        let verification = if dev {
            Verification::for_dev_server(vars)?
        } else {
            Verification::from_vars(vars)?
        };
        let (store, kind) = Self::store_for(&settings).await?;
        Ok(
            Self::with_source(settings, store, kind, clock, source, ttl)?
                .with_verification(verification),
        )
    }

    /// MongoDB when the settings have a URI, else the embedded store. The client connects
    /// lazily; index creation starts in the background and writes that need it wait for it.
    pub async fn store_for(settings: &Settings) -> Result<(Arc<dyn Store>, StoreKind), InitError> {
        Ok(match &settings.mongo_uri {
            Some(uri) => {
                let uri = String::from_utf8_lossy(uri.expose()).into_owned();
                let opts = MongoOptions {
                    max_pool_size: settings.mongo_pool_size,
                    ..MongoOptions::default()
                };
                let client = MongoStore::client(&uri, &opts).await?;
                let store =
                    MongoStore::new(&client, &settings.db_name, &settings.collection_name, &opts);
                let background = store.clone();
                tokio::spawn(async move {
                    if let Err(e) = background.ensure_indexes().await {
                        tracing::warn!(error = %e, "index creation failed; the first write retries it");
                    }
                });
                (Arc::new(store), StoreKind::Mongo)
            }
            None => (Arc::new(MemoryStore::new()), StoreKind::Embedded),
        })
    }
}
