//! Everything built once per cold start and shared by reference across requests.

use std::{sync::Arc, time::Duration};

use adapters::{
    mongo::{MongoOptions, MongoStore},
    secrets::SecretSource,
};
use domain::{
    auth::token::TokenKeys,
    clock::{Clock, SystemClock},
    config::{ConfigError, Settings, Vars},
    email::{self as mail, Mail, MakeMailer},
    events::{MakePublisher, Relay, no_publisher},
    federation::{Federation, MakeProviderKeys, no_federation},
    hooks::{Hooks, MakeHookCaller, no_hooks},
    keys::{KeyCache, KeySource},
    passkey::Passkeys,
    sms::{self, MakeSender},
    store::{Store, StoreError, memory::MemoryStore},
    verification::{Verification, VerificationConfigError},
};
use futures::future::BoxFuture;

use crate::schema::Schemas;

/// Why a process could not start. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("phone verification: {0}")]
    Verification(#[from] VerificationConfigError),
    #[error("email: {0}")]
    Mail(#[from] domain::sms::SmsConfigError),
}

/// Which store backs the state; the dev server prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Mongo,
    Embedded,
}

/// A store and which kind it is.
pub type Built = (Arc<dyn Store>, StoreKind);

/// Builds the store a state uses from its settings.
pub type MakeStore = for<'a> fn(&'a Settings) -> BoxFuture<'a, Result<Built, InitError>>;

/// Builds the relying party from the settings' variables: `None` where passkeys are off.
/// The `passkeys` function's `main` hands in the `passkeys` crate's (webauthn-rs), so this
/// crate, and every other function's binary, never links it.
pub type MakePasskeys = fn(&Vars) -> Result<Option<Passkeys>, ConfigError>;

/// No passkeys: every function but `passkeys` (and the dev server's and tests' own).
pub fn no_passkeys(_: &Vars) -> Result<Option<Passkeys>, ConfigError> {
    Ok(None)
}

/// What a process builds at its cold start beyond settings and keys: a function names the
/// adapters its routes use, so its binary links (and its cold start builds) no others. The
/// domain never chooses an adapter; this is the one place that does.
#[derive(Clone, Copy)]
pub struct Wiring {
    /// The store: MongoDB (or the embedded store without a URI), or `None` for a function
    /// whose routes read no database (it gets an empty in-memory store and needs no URI).
    pub store: Option<MakeStore>,
    /// The SMS sender: the adapters' for a function whose routes send codes,
    /// [`sms::no_sender`] for the others.
    pub sms: MakeSender,
    /// The mail sender: the adapters' for a function whose routes send mail (the same four
    /// as SMS), [`mail::no_mailer`] for the others.
    pub mail: MakeMailer,
    /// Whether its routes sign tokens (login, refresh): the signing key is then validated in
    /// full at init (`KeySet::check_signing_key`, about 0.2 ms for RS256), so a bad key fails
    /// the cold start; the others only verify and never need the private key.
    pub signs: bool,
    /// The relying party: [`no_passkeys`] but where a `main` supplies one
    /// ([`Wiring::with_passkeys`]).
    pub passkeys: MakePasskeys,
    /// The hook caller, for functions whose routes run hooks (those that sign tokens run
    /// `pre_token`).
    pub hooks: MakeHookCaller,
    /// The identity providers' key source, for functions serving the federation routes.
    pub federation: MakeProviderKeys,
    /// The event publisher, for functions whose routes change users (all with a database):
    /// each delivers what its request wrote; the drain delivers what it could not.
    pub events: MakePublisher,
}

impl Wiring {
    /// Everything: the dev server, the admin CLI, the tests.
    pub const ALL: Self = Self {
        store: Some(mongo_or_memory),
        sms: adapters::sms_sender,
        mail: adapters::mail_sender,
        signs: true,
        passkeys: no_passkeys,
        hooks: adapters::hook_caller,
        events: adapters::eventbridge::publisher,
        federation: adapters::oidc::provider_keys_maker,
    };
    /// A database, SMS and mail, no signing (signup, update, verify, recover).
    pub const SENDS_CODES: Self = Self {
        store: Some(mongo_or_memory),
        sms: adapters::sms_sender,
        mail: adapters::mail_sender,
        signs: false,
        passkeys: no_passkeys,
        hooks: adapters::hook_caller,
        events: adapters::eventbridge::publisher,
        federation: no_federation,
    };
    /// A database, signing, no SMS or mail (login, refresh).
    pub const SIGNS: Self = Self {
        store: Some(mongo_or_memory),
        sms: sms::no_sender,
        mail: mail::no_mailer,
        signs: true,
        passkeys: no_passkeys,
        hooks: adapters::hook_caller,
        events: adapters::eventbridge::publisher,
        federation: no_federation,
    };
    /// [`Wiring::SIGNS`] for the sign-in hot path (login, refresh): no EventBridge client
    /// linked. The events these rarely write (a reused refresh token's `session.revoked`)
    /// wait in the outbox for the `events-drain` function, a minute at most.
    pub const SIGNS_HOT: Self = Self {
        events: no_publisher,
        ..Self::SIGNS
    };
    /// A database only (logout, admin).
    pub const DATABASE: Self = Self {
        store: Some(mongo_or_memory),
        sms: sms::no_sender,
        mail: mail::no_mailer,
        signs: false,
        passkeys: no_passkeys,
        hooks: no_hooks,
        events: adapters::eventbridge::publisher,
        federation: no_federation,
    };
    /// Keys only (the JWKS and discovery document): public halves, nothing signed.
    pub const KEYS_ONLY: Self = Self {
        store: None,
        sms: sms::no_sender,
        mail: mail::no_mailer,
        signs: false,
        passkeys: no_passkeys,
        hooks: no_hooks,
        events: no_publisher,
        federation: no_federation,
    };
}

impl Wiring {
    /// This wiring with the relying party `make` builds (the `passkeys` function, the dev
    /// server).
    pub const fn with_passkeys(self, make: MakePasskeys) -> Self {
        Self {
            passkeys: make,
            ..self
        }
    }

    /// This wiring with identity providers' keys fetched by `make`.
    pub const fn with_federation(self, make: MakeProviderKeys) -> Self {
        Self {
            federation: make,
            ..self
        }
    }
}

/// MongoDB when the settings have a URI, else the embedded store ([`State::store_for`]).
pub fn mongo_or_memory(settings: &Settings) -> BoxFuture<'_, Result<Built, InitError>> {
    Box::pin(State::store_for(settings))
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
    /// Email: off, without a sender, unless set from variables.
    pub email: Mail,
    /// Passkeys: off unless the wiring builds a relying party and `PASSKEY_RP_ID` is set.
    pub passkeys: Option<Passkeys>,
    /// Hooks: none unless set from variables.
    pub hooks: Hooks,
    /// Identity providers: none unless `FEDERATION_PROVIDERS` is set and the wiring fetches
    /// their keys.
    pub federation: Option<Federation>,
    /// Delivers the events a request wrote; none unless `EVENTS_BUS` is set and the wiring
    /// has a publisher (a function without one leaves its events to the drain).
    pub relay: Option<Relay>,
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
        let source = source.map(|s| Arc::new(s) as Arc<dyn KeySource>);
        let keys = Arc::new(KeyCache::new(&settings, source, ttl, clock.now()));
        let verification = Verification::off()?;
        Ok(Self {
            verification,
            email: Mail::off(),
            passkeys: None,
            hooks: Hooks::default(),
            relay: None,
            federation: None,
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

    /// This state with `email` instead of its own (tests, the dev server).
    pub fn with_email(mut self, email: Mail) -> Self {
        self.email = email;
        self
    }

    /// This state delivering its requests' events through `publisher` (`None`: left to the
    /// drain).
    pub fn with_publisher(
        mut self,
        publisher: Option<std::sync::Arc<dyn domain::events::EventPublisher>>,
    ) -> Self {
        let store: Arc<dyn domain::events::OutboxStore> = self.store.clone();
        self.relay = publisher.map(|publisher| Relay { publisher, store });
        self
    }

    /// Delivers the events requests left in the outbox (made at least
    /// `EVENTS_DRAIN_MIN_AGE_SECONDS` ago, default 30: younger ones are likely being
    /// delivered by their own request), for up to `budget`. Nothing without a relay.
    pub async fn drain_events(&self, budget: Duration) -> domain::events::Delivered {
        let Some(relay) = &self.relay else {
            tracing::warn!("drain: EVENTS_BUS is not set; nothing to deliver to");
            return domain::events::Delivered::default();
        };
        let now = self.clock.now();
        let deadline = tokio::time::Instant::now() + budget;
        let made_before = now.saturating_sub(self.settings.events.drain_min_age_secs);
        domain::store::deadline::within(deadline, relay.drain(made_before, now, deadline)).await
    }

    /// This state with `federation` instead of its own.
    pub fn with_federation(mut self, federation: Option<Federation>) -> Self {
        self.federation = federation;
        self
    }

    /// This state with `hooks` instead of its own (tests).
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// This state with `passkeys` instead of its own (tests).
    pub fn with_passkeys(mut self, passkeys: Option<Passkeys>) -> Self {
        self.passkeys = passkeys;
        self
    }

    /// One request's context over this state, at the clock's now, for `client`.
    pub fn ctx<'a>(&'a self, client: &'a domain::service::Client) -> domain::service::Ctx<'a> {
        domain::service::Ctx {
            store: self.store.as_ref(),
            keys: &self.keys,
            policy: &self.settings,
            now: self.clock.now(),
            client,
            verification: &self.verification,
            email: &self.email,
            passkeys: self.passkeys.as_ref(),
            hooks: &self.hooks,
            federation: self.federation.as_ref(),
        }
    }

    /// The token keys in force (refreshed in the background when a secret's TTL passes).
    pub fn tokens(&self) -> Arc<TokenKeys> {
        self.keys.get(self.clock.now())
    }

    /// Cold start of a Lambda function: settings from the environment or a secret, MongoDB
    /// required (`USER_API_EMBEDDED_STORE=1` lifts that for benchmarks that measure the
    /// database's share; a deployed function never sets it).
    /// `wiring` names the adapters the function's routes use.
    pub async fn init(wiring: Wiring) -> Result<Self, InitError> {
        let vars = Vars::from_env();
        let require_mongo =
            wiring.store.is_some() && vars.get("USER_API_EMBEDDED_STORE") != Some("1");
        Self::load_inner(&vars, require_mongo, Arc::new(SystemClock), false, wiring).await
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
        Self::load_inner(vars, require_mongo, clock, false, Wiring::ALL).await
    }

    /// The dev server's state: as [`State::load`], with the dev server's SMS defaults (the
    /// log sender, verification off unless `REQUIRE_PHONE_VERIFICATION=true`).
    /// `wiring` is [`Wiring::ALL`], with the dev server's relying party.
    pub async fn load_dev(vars: &Vars, wiring: Wiring) -> Result<Self, InitError> {
        Self::load_inner(vars, false, Arc::new(SystemClock), true, wiring).await
    }

    async fn load_inner(
        vars: &Vars,
        require_mongo: bool,
        clock: Arc<dyn Clock>,
        dev: bool,
        wiring: Wiring,
    ) -> Result<Self, InitError> {
        // The settings with what the secret holds of them (the hooks' signing secrets, the
        // providers' client secrets and keys) over the environment's.
        let mut secret_vars = vars.clone();
        let (settings, source) = match vars.get("SECRET_ID") {
            Some(id) => {
                let source = Box::pin(SecretSource::new(id, vars)).await?;
                let fetched = Box::pin(source.fetch()).await?;
                for (name, s) in &fetched.secret_vars {
                    secret_vars.set(name, String::from_utf8_lossy(s.expose()).into_owned());
                }
                // A URI in the secret wins; a plain MONGO_URI serves secrets that hold only keys.
                let uri = fetched.mongo_uri.or_else(|| {
                    vars.get("MONGO_URI")
                        .map(|u| domain::config::Secret::new(u.as_bytes()))
                });
                (Settings::with_keys(vars, fetched.keys, uri)?, Some(source))
            }
            None => (Settings::from_vars(vars)?, None),
        };
        if wiring.signs {
            settings.keys.check_signing_key()?;
        }
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
        let (verification, email) = if dev {
            (
                Verification::for_dev_server(vars, wiring.sms)?,
                Mail::for_dev_server(vars, wiring.mail)?,
            )
        } else {
            (
                Verification::from_vars(vars, wiring.sms)?,
                Mail::from_vars(vars, wiring.mail)?,
            )
        };
        let passkeys = (wiring.passkeys)(vars)?;
        let hooks = Hooks::from_vars(&secret_vars, wiring.hooks)?;
        let publisher = (wiring.events)(&settings.events);
        let federation = Federation::from_vars(&secret_vars, wiring.federation)?;
        let (store, kind): (Arc<dyn Store>, _) = match wiring.store {
            Some(make) => make(&settings).await?,
            None => (Arc::new(MemoryStore::new()), StoreKind::Embedded),
        };
        Ok(
            Self::with_source(settings, store, kind, clock, source, ttl)?
                .with_verification(verification)
                .with_email(email)
                .with_passkeys(passkeys)
                .with_hooks(hooks)
                .with_publisher(publisher)
                .with_federation(federation),
        )
    }

    /// MongoDB when the settings have a URI, else the embedded store. The URI is parsed here
    /// (a bad one fails the cold start); the driver's client is built just after the runtime's
    /// first poll ([`MongoStore::connect_soon`]), so its handshake does not delay it. No index
    /// is created here: the first write that depends on one (a new account, an identifier
    /// change) creates them all, once per instance (`MongoStore::ensure_indexes`), so the
    /// functions that never write one (login, logout, refresh, ...) send no DDL at all, and a
    /// cold start spends nothing on it.
    pub async fn store_for(settings: &Settings) -> Result<(Arc<dyn Store>, StoreKind), InitError> {
        Ok(match &settings.mongo_uri {
            Some(uri) => {
                let uri = String::from_utf8_lossy(uri.expose()).into_owned();
                let opts = MongoOptions {
                    max_pool_size: settings.mongo_pool_size,
                    ..MongoOptions::default()
                };
                let (db, collection) = (&settings.db_name, &settings.collection_name);
                let store = Box::pin(MongoStore::deferred(&uri, db, collection, &opts))
                    .await?
                    .with_events(settings.events.enabled());
                store.connect_soon();
                (Arc::new(store), StoreKind::Mongo)
            }
            None => (
                Arc::new(MemoryStore::new().with_events(settings.events.enabled())),
                StoreKind::Embedded,
            ),
        })
    }
}
