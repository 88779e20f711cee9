//! MongoDB store. Uniqueness is decided by a unique index, expiry by a TTL index, and every
//! call is bounded by a timeout so a stalled server yields 503 rather than a hung request.

mod ceremony;
mod codes;
mod counters;
mod outbox;
mod sessions;
mod users;

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::sync::OnceCell;

use domain::store::{StoreError, deadline};
use domain::types::UserId;
use futures::TryStreamExt;
use mongodb::{
    Client, Collection, IndexModel,
    bson::{DateTime, Document, doc, oid::ObjectId},
    error::{ErrorKind, WriteFailure},
    options::{ClientOptions, IndexOptions},
};

/// The unique (sparse) index on the version 1 `phone` field.
pub const PHONE_INDEX: &str = "phone_unique_sparse";

/// How many times [`MongoStore::connect_soon`]'s task yields before building the client. Each
/// `yield_now` resumes only after the runtime has polled its I/O driver, so the runtime's
/// first poll (connect, handshake, request written by hyper's connection task) goes first.
const YIELDS_BEFORE_CONNECTING: usize = 2;

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Connection tuning. Defaults keep every request well under a Lambda timeout.
#[derive(Debug, Clone)]
pub struct MongoOptions {
    /// How long to wait for a usable server before answering 503.
    pub server_selection_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Upper bound on any single store call.
    pub op_timeout: Duration,
    /// A Lambda instance serves one request at a time: one connection for it and one for the
    /// background index check is enough. The dev server raises it.
    pub max_pool_size: u32,
}

impl Default for MongoOptions {
    fn default() -> Self {
        Self {
            server_selection_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            op_timeout: Duration::from_secs(4),
            max_pool_size: 2,
        }
    }
}

/// Users and sessions in two collections of one database.
///
/// The driver's client may be built later than the store ([`MongoStore::deferred`]): a
/// function's cold start parses and checks the URI, and the client (whose monitor connects
/// and sends its handshake as soon as it exists) is built in a background task that runs once
/// the runtime has sent its first poll, or by the first call, whichever comes first.
#[derive(Clone)]
pub struct MongoStore {
    collections: Arc<OnceLock<Result<Collections, StoreError>>>,
    /// What a deferred store builds its client from (`None` once built from a client).
    plan: Option<Arc<Plan>>,
    /// Whether changes record lifecycle events (`EVENTS_BUS` set).
    events_on: bool,
    op_timeout: Duration,
    /// Set once the indexes exist; shared by clones so one creation serves them all.
    indexed: Arc<OnceCell<()>>,
}

/// The collections, once a client exists.
struct Collections {
    users: Collection<Document>,
    sessions: Collection<sessions::SessionDoc>,
    attempts: Collection<counters::AttemptDoc>,
    budgets: Collection<counters::BudgetDoc>,
    codes: Collection<codes::CodeDoc>,
    ceremonies: Collection<ceremony::CeremonyDoc>,
    /// Deletions' events, staged ahead of the deletion (`outbox`).
    outbox: Collection<Document>,
}

impl Collections {
    fn new(client: &Client, db: &str, collection: &str) -> Self {
        let db = client.database(db);
        Self {
            users: db.collection(collection),
            sessions: db.collection(&format!("{collection}_sessions")),
            attempts: db.collection(&format!("{collection}_login_attempts")),
            budgets: db.collection(&format!("{collection}_budgets")),
            codes: db.collection(&format!("{collection}_codes")),
            ceremonies: db.collection(&format!("{collection}_ceremonies")),
            outbox: db.collection(&format!("{collection}_outbox")),
        }
    }
}

/// A deferred store's parsed options and names.
struct Plan {
    options: ClientOptions,
    db: String,
    collection: String,
}

fn oid(id: &UserId) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

/// Unix seconds now, for a deletion's event (the store calls carry no clock).
fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn to_dt(unix_secs: i64) -> DateTime {
    DateTime::from_millis(unix_secs.saturating_mul(1000))
}

/// Maps a driver error to what the handlers need to know about it.
pub fn classify(e: mongodb::error::Error) -> StoreError {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => {
            StoreError::Duplicate
        }
        ErrorKind::Command(c) if c.code == DUPLICATE_KEY => StoreError::Duplicate,
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

impl MongoStore {
    /// Builds a client for `uri`; its monitor starts connecting at once, in the background.
    ///
    /// Precedence, for every option below: what the URI names, else `opts` (for the pool,
    /// `MONGO_MAX_POOL_SIZE`), else the driver's default. So `maxPoolSize`, `maxIdleTimeMS`,
    /// `serverSelectionTimeoutMS`, `connectTimeoutMS` and `appName` in `MONGO_URI` reach the
    /// driver as written. `maxIdleTimeMS` defaults to 60 s: a frozen Lambda instance's
    /// connections may have been closed by the server meanwhile, so old idle ones are dropped
    /// rather than tried.
    pub async fn client(uri: &str, opts: &MongoOptions) -> Result<Client, StoreError> {
        Client::with_options(Self::client_options(uri, opts).await?).map_err(classify)
    }

    /// The driver options [`MongoStore::client`] uses (tests check what reaches the driver).
    pub async fn client_options(
        uri: &str,
        opts: &MongoOptions,
    ) -> Result<ClientOptions, StoreError> {
        let mut options = ClientOptions::parse(uri).await.map_err(|e| {
            let hint = if uri.contains("MONGODB-AWS") && !cfg!(feature = "mongodb-aws") {
                " (MONGODB-AWS needs the functions built with `--features mongodb-aws`)"
            } else {
                ""
            };
            StoreError::Other(format!("bad MONGO_URI: {}{hint}", e.kind))
        })?;
        options
            .server_selection_timeout
            .get_or_insert(opts.server_selection_timeout);
        options.connect_timeout.get_or_insert(opts.connect_timeout);
        options.max_pool_size.get_or_insert(opts.max_pool_size);
        options.max_idle_time.get_or_insert(Duration::from_secs(60));
        options
            .app_name
            .get_or_insert_with(|| "user-api".to_owned());
        Ok(options)
    }

    /// A store over `db` whose users live in `collection` and sessions in `<collection>_sessions`.
    pub fn new(client: &Client, db: &str, collection: &str, opts: &MongoOptions) -> Self {
        Self {
            collections: Arc::new(OnceLock::from(Ok(Collections::new(client, db, collection)))),
            ..Self::empty(opts)
        }
    }

    /// A store whose client is built on its first call or by [`MongoStore::connect_soon`]
    /// from `uri` (parsed and checked here, so a bad URI fails the cold start).
    pub async fn deferred(
        uri: &str,
        db: &str,
        collection: &str,
        opts: &MongoOptions,
    ) -> Result<Self, StoreError> {
        let options = Self::client_options(uri, opts).await?;
        Ok(Self {
            plan: Some(Arc::new(Plan {
                options,
                db: db.to_owned(),
                collection: collection.to_owned(),
            })),
            ..Self::empty(opts)
        })
    }

    fn empty(opts: &MongoOptions) -> Self {
        Self {
            collections: Arc::new(OnceLock::new()),
            plan: None,
            events_on: false,
            op_timeout: opts.op_timeout,
            indexed: Arc::new(OnceCell::new()),
        }
    }

    /// The collections, building the client first if this is a deferred store's first call
    /// (a client that cannot be built fails every call with the same error).
    fn db(&self) -> Result<&Collections, StoreError> {
        self.collections
            .get_or_init(|| match &self.plan {
                Some(plan) => Client::with_options(plan.options.clone())
                    .map(|client| Collections::new(&client, &plan.db, &plan.collection))
                    .map_err(classify),
                None => Err(StoreError::Other("no MongoDB client".to_owned())),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether the client has been built (or this store was made from one); a client that
    /// could not be built counts, as its error is what every call then returns.
    pub fn client_built(&self) -> bool {
        self.collections.get().is_some()
    }

    /// Builds a deferred store's client in a background task that runs after the tasks that
    /// are ready now and after those they wake: at a cold start, after the runtime has sent
    /// its first poll of the Runtime API. The driver's monitor then connects and sends its
    /// handshake while the runtime waits for the event, not before it asks for one (with the
    /// database a network round trip away, as deployed, the handshake came after the poll
    /// anyway). A call that comes first builds the client itself. Needs a Tokio runtime.
    pub fn connect_soon(&self) {
        if self.client_built() {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            for _ in 0..YIELDS_BEFORE_CONNECTING {
                tokio::task::yield_now().await;
            }
            // An error here is the first call's to report.
            let _ = store.db();
        });
    }

    /// This store, recording lifecycle events with every change when `on` (`EVENTS_BUS`).
    pub fn with_events(mut self, on: bool) -> Self {
        self.events_on = on;
        self
    }

    /// Creates the unique identifier indexes and the expiry indexes. Idempotent: creating an
    /// index that exists with the same options is a no-op. Called before the writes a unique
    /// index decides (a new account, an identifier change), once per instance, never at cold
    /// start: instances that never make such a write (login, logout, ...) send no DDL.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        self.indexed
            .get_or_try_init(|| self.create_indexes())
            .await
            .map(|_| ())
    }

    /// Whether [`MongoStore::ensure_indexes`] has succeeded in this instance.
    pub fn indexes_ready(&self) -> bool {
        self.indexed.initialized()
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let c = self.db()?;
        // Sparse: an account without a phone (email only) has no `phone` field, and a
        // non-sparse unique index would let only one such account exist. It replaces the
        // earlier non-sparse `phone_unique` (dropped once this one exists; `prune_indexes`).
        let phone = IndexModel::builder()
            .keys(doc! { "phone": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .sparse(true)
                    .name(PHONE_INDEX.to_owned())
                    .build(),
            )
            .build();
        // Every identifier key of a version 2 document (a multikey index: one entry per key);
        // sparse, as version 1 documents have none.
        let ids = IndexModel::builder()
            .keys(doc! { "ids": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .sparse(true)
                    .name("ids_unique".to_owned())
                    .build(),
            )
            .build();
        // Documents go when their `expires_at` passes.
        let ttl = || {
            IndexModel::builder()
                .keys(doc! { "expires_at": 1 })
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::ZERO)
                        .name("expires_at_ttl".to_owned())
                        .build(),
                )
                .build()
        };
        let by_user = IndexModel::builder()
            .keys(doc! { "user_id": 1 })
            .options(IndexOptions::builder().name("user_id".to_owned()).build())
            .build();
        let pending = IndexModel::builder()
            .keys(doc! { "pending_phone": 1 })
            .options(
                IndexOptions::builder()
                    .name("pending_phone".to_owned())
                    .sparse(true)
                    .build(),
            )
            .build();
        // Users with events not yet delivered (sparse: most have none), for the drain.
        let outbox = IndexModel::builder()
            .keys(doc! { "outbox.at": 1 })
            .options(
                IndexOptions::builder()
                    .name("outbox_at".to_owned())
                    .sparse(true)
                    .build(),
            )
            .build();
        let staged = IndexModel::builder()
            .keys(doc! { "at": 1 })
            .options(IndexOptions::builder().name("at".to_owned()).build())
            .build();
        let (users, sessions, attempts, budgets, codes, ceremonies) = tokio::join!(
            self.timed(async { c.users.create_indexes([phone, ids, pending, outbox]).await }),
            self.timed(async { c.sessions.create_indexes([ttl(), by_user]).await }),
            self.timed(async { c.attempts.create_index(ttl()).await }),
            self.timed(async { c.budgets.create_index(ttl()).await }),
            self.timed(async { c.codes.create_index(ttl()).await }),
            self.timed(async { c.ceremonies.create_index(ttl()).await }),
        );
        users
            .and(sessions)
            .and(attempts)
            .and(budgets)
            .and(codes)
            .and(ceremonies)?;
        self.timed(async { c.outbox.create_index(staged).await })
            .await?;
        self.prune_indexes().await
    }

    /// Drops the indexes earlier releases made that this one replaced (the non-sparse
    /// `phone_unique`), once their replacements exist. Idempotent: a missing one is fine.
    async fn prune_indexes(&self) -> Result<(), StoreError> {
        let c = self.db()?;
        let names = self
            .timed(async { c.users.list_index_names().await })
            .await?;
        if names.iter().any(|n| n == "phone_unique") {
            match self
                .timed(async { c.users.drop_index("phone_unique").await })
                .await
            {
                Ok(()) | Err(StoreError::Other(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Bounds a store call by the operation timeout and records its latency (EMF
    /// `StoreLatency`, see `crate::metrics`).
    async fn timed<T>(
        &self,
        fut: impl Future<Output = mongodb::error::Result<T>>,
    ) -> Result<T, StoreError> {
        // Bounded by the call's own cap and by what is left of the request's deadline.
        let budget = deadline::remaining(self.op_timeout);
        if budget.is_zero() {
            return Err(StoreError::Unavailable(
                "request deadline passed".to_owned(),
            ));
        }
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(budget, fut).await;
        crate::metrics::store_latency(started.elapsed());
        match result {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(StoreError::Unavailable("operation timed out".to_owned())),
        }
    }
}

/// Lists index names of the users collection (tests check the unique index exists).
pub async fn user_index_names(store: &MongoStore) -> Result<Vec<String>, StoreError> {
    let c = store.db()?;
    let cursor = store.timed(async { c.users.list_indexes().await }).await?;
    let indexes: Vec<IndexModel> = store.timed(cursor.try_collect()).await?;
    Ok(indexes
        .into_iter()
        .filter_map(|i| i.options.and_then(|o| o.name))
        .collect())
}
