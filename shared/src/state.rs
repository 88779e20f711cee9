//! Everything built once per cold start and shared by reference across requests.

use std::sync::Arc;

use crate::{
    auth::token::TokenKeys,
    clock::{Clock, SystemClock},
    config::{ConfigError, Settings, Vars},
    schema::Schemas,
    store::{
        Store, StoreError,
        memory::MemoryStore,
        mongo::{MongoOptions, MongoStore},
    },
};

/// Why a process could not start. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("schemas: {0}")]
    Schema(String),
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
    pub tokens: TokenKeys,
    pub clock: Arc<dyn Clock>,
}

impl State {
    /// Assembles a state from parts (tests pass their own store and clock).
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        store_kind: StoreKind,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, InitError> {
        let schemas = Schemas::compile().map_err(InitError::Schema)?;
        let tokens = TokenKeys::new(
            &settings.keys,
            &settings.issuer,
            &settings.audience,
            settings.jwt_ttl,
        );
        Ok(Self {
            settings,
            store,
            store_kind,
            schemas,
            tokens,
            clock,
        })
    }

    /// Cold start of a Lambda function: settings from the environment, MongoDB required.
    pub async fn init() -> Result<Self, InitError> {
        let settings = Settings::from_vars(&Vars::from_env())?;
        if settings.mongo_uri.is_none() {
            return Err(ConfigError::Missing("MONGO_URI".to_owned()).into());
        }
        Self::from_settings(settings).await
    }

    /// Builds the store the settings call for: MongoDB when a URI is set, else the embedded store.
    pub async fn from_settings(settings: Settings) -> Result<Self, InitError> {
        let (store, kind): (Arc<dyn Store>, _) = match &settings.mongo_uri {
            Some(uri) => {
                let uri = String::from_utf8_lossy(uri.expose()).into_owned();
                let opts = MongoOptions::default();
                let client = MongoStore::client(&uri, &opts).await?;
                let store =
                    MongoStore::new(&client, &settings.db_name, &settings.collection_name, &opts);
                store.ensure_indexes().await?;
                (Arc::new(store), StoreKind::Mongo)
            }
            None => (Arc::new(MemoryStore::new()), StoreKind::Embedded),
        };
        Self::new(settings, store, kind, Arc::new(SystemClock))
    }
}
