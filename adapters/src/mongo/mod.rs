//! MongoDB store. Uniqueness is decided by a unique index, expiry by a TTL index, and every
//! call is bounded by a timeout so a stalled server yields 503 rather than a hung request.

mod ceremony;

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::OnceCell;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::{
    Client, Collection, IndexModel,
    bson::{DateTime, Document, doc, oid::ObjectId},
    error::{ErrorKind, WriteFailure},
    options::{ClientOptions, IndexOptions, ReturnDocument},
};
use serde::{Deserialize, Serialize};

use domain::store::{
    AttemptPolicy, Attempts, BudgetStore, CodeCheck, CodeRecord, CodeStore, Consumed, Issued,
    LoginAttemptStore, Reservation, SessionRecord, SessionStore, StoreError, UserPatch, UserRecord,
    UserStore, deadline, window_of,
};
use domain::{
    credential::Opened,
    types::{Name, Phone, UserId},
};

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
#[derive(Clone)]
pub struct MongoStore {
    users: Collection<Document>,
    sessions: Collection<SessionDoc>,
    attempts: Collection<AttemptDoc>,
    budgets: Collection<BudgetDoc>,
    codes: Collection<CodeDoc>,
    ceremonies: Collection<ceremony::CeremonyDoc>,
    op_timeout: Duration,
    /// Set once the indexes exist; shared by clones so one creation serves them all.
    indexed: Arc<OnceCell<()>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AttemptDoc {
    #[serde(rename = "_id")]
    key: String,
    failures: u32,
    locked_until: i64,
    last_failure_at: i64,
    expires_at: DateTime,
}

impl From<AttemptDoc> for Attempts {
    fn from(d: AttemptDoc) -> Self {
        Self {
            failures: d.failures,
            locked_until: d.locked_until,
            last_failure_at: d.last_failure_at,
        }
    }
}

/// A fixed-window use counter; `_id` is `<key>#<window start>`.
#[derive(Debug, Serialize, Deserialize)]
struct BudgetDoc {
    #[serde(rename = "_id")]
    id: String,
    count: u32,
    expires_at: DateTime,
}

/// A one-time code; `_id` is `<purpose>:<phone>`, so a new code replaces the previous one.
#[derive(Debug, Serialize, Deserialize)]
struct CodeDoc {
    #[serde(rename = "_id")]
    id: String,
    phone: String,
    purpose: String,
    hash: mongodb::bson::Binary,
    #[serde(default)]
    user_id: Option<ObjectId>,
    sent_at: i64,
    /// Unix seconds, compared in filters; `expires_at` is the same instant for the TTL index.
    expires: i64,
    expires_at: DateTime,
    attempts: u32,
}

fn code_id(purpose: &str, phone: &str) -> String {
    format!("{purpose}:{phone}")
}

impl From<CodeDoc> for CodeRecord {
    fn from(d: CodeDoc) -> Self {
        Self {
            phone: d.phone,
            purpose: d.purpose,
            hash: d.hash.bytes,
            user_id: d.user_id.map(|o| UserId::from_bytes(o.bytes())),
            sent_at: d.sent_at,
            expires_at: d.expires,
            attempts: d.attempts,
        }
    }
}

fn oid(id: &UserId) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

/// A user document as this service writes it.
fn user_doc(u: &UserRecord) -> Document {
    let mut d = doc! {
        "_id": oid(&u.id),
        "first_name": u.first_name.as_str(),
        "last_name": u.last_name.as_str(),
        "phone": u.phone.as_str(),
        "password_hash": u.password_hash.as_str(),
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "phone_verified": u.phone_verified,
    };
    if let Some(m) = &u.middle_name {
        d.insert("middle_name", m.as_str());
    }
    // Absent unless set, as in the Flask service's documents.
    if u.disabled {
        d.insert("disabled", true);
    }
    if let Some(p) = &u.pending_phone {
        d.insert("pending_phone", p.as_str());
    }
    d
}

/// Reads a user document leniently: a missing or oddly typed field becomes empty rather than
/// an error, so a document written by another service (the Flask service stores `password`,
/// not `password_hash`, and no timestamps) never turns a request into a 500. A document
/// without an ObjectId `_id` cannot be addressed and is an error.
fn user_from_doc(d: &Document) -> Result<UserRecord, StoreError> {
    let id = d
        .get_object_id("_id")
        .map_err(|_| StoreError::Other("user document without an ObjectId _id".to_owned()))?;
    let text = |k: &str| d.get_str(k).ok().map(str::to_owned);
    let int = |k: &str| {
        d.get_i64(k)
            .ok()
            .or_else(|| d.get_i32(k).ok().map(i64::from))
            .unwrap_or_default()
    };
    Ok(UserRecord {
        id: UserId::from_bytes(id.bytes()),
        first_name: Name::stored(text("first_name").unwrap_or_default()),
        middle_name: text("middle_name")
            .filter(|m| !m.trim().is_empty())
            .map(Name::stored),
        last_name: Name::stored(text("last_name").unwrap_or_default()),
        phone: Phone::stored(text("phone").unwrap_or_default()),
        password_hash: text("password_hash")
            .or_else(|| text("password"))
            .unwrap_or_default(),
        disabled: d.get_bool("disabled").unwrap_or(false),
        created_at: int("created_at"),
        updated_at: int("updated_at"),
        // Absent on accounts made before verification existed: those stay able to log in.
        phone_verified: d.get_bool("phone_verified").unwrap_or(true),
        pending_phone: text("pending_phone").map(Phone::stored),
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionDoc {
    #[serde(rename = "_id")]
    id: String,
    user_id: ObjectId,
    token_digest: String,
    created_at: DateTime,
    expires_at: DateTime,
    absolute_expires_at: DateTime,
    #[serde(default)]
    refresh_digest: String,
    #[serde(default)]
    refresh_prev: String,
    #[serde(default)]
    refresh_rotated_at: i64,
    #[serde(default)]
    refresh_spent: Vec<String>,
    /// Absent on sessions opened before sessions recorded it.
    #[serde(default)]
    credential_id: String,
    #[serde(default)]
    method: String,
}

fn to_dt(unix_secs: i64) -> DateTime {
    DateTime::from_millis(unix_secs.saturating_mul(1000))
}

impl From<&SessionRecord> for SessionDoc {
    fn from(s: &SessionRecord) -> Self {
        Self {
            id: s.id.clone(),
            user_id: oid(&s.user_id),
            token_digest: s.token_digest.clone(),
            created_at: to_dt(s.created_at),
            expires_at: to_dt(s.expires_at),
            absolute_expires_at: to_dt(s.absolute_expires_at),
            refresh_digest: s.refresh_digest.clone(),
            refresh_prev: s.refresh_prev.clone(),
            refresh_rotated_at: s.refresh_rotated_at,
            refresh_spent: s.refresh_spent.clone(),
            credential_id: s.opened.credential_id.clone(),
            method: s.opened.method.clone(),
        }
    }
}

impl From<SessionDoc> for SessionRecord {
    fn from(d: SessionDoc) -> Self {
        Self {
            id: d.id,
            user_id: UserId::from_bytes(d.user_id.bytes()),
            token_digest: d.token_digest,
            created_at: d.created_at.timestamp_millis() / 1000,
            expires_at: d.expires_at.timestamp_millis() / 1000,
            absolute_expires_at: d.absolute_expires_at.timestamp_millis() / 1000,
            refresh_digest: d.refresh_digest,
            refresh_prev: d.refresh_prev,
            refresh_rotated_at: d.refresh_rotated_at,
            refresh_spent: d.refresh_spent,
            opened: Opened {
                credential_id: d.credential_id,
                method: d.method,
            },
        }
    }
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
    /// Builds a client for `uri` without contacting the server; the first operation connects.
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
        let db = client.database(db);
        Self {
            users: db.collection(collection),
            sessions: db.collection(&format!("{collection}_sessions")),
            attempts: db.collection(&format!("{collection}_login_attempts")),
            budgets: db.collection(&format!("{collection}_budgets")),
            codes: db.collection(&format!("{collection}_codes")),
            ceremonies: db.collection(&format!("{collection}_ceremonies")),
            op_timeout: opts.op_timeout,
            indexed: Arc::new(OnceCell::new()),
        }
    }

    /// Creates the unique phone index and the session indexes. Idempotent: creating an index
    /// that exists with the same options is a no-op, so every cold start may call it.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        self.indexed
            .get_or_try_init(|| self.create_indexes())
            .await
            .map(|_| ())
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let phone = IndexModel::builder()
            .keys(doc! { "phone": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("phone_unique".to_owned())
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
        let (a, b, c, d, e, f) = tokio::join!(
            self.timed(async { self.users.create_indexes([phone, pending]).await }),
            self.timed(async { self.sessions.create_indexes([ttl(), by_user]).await }),
            self.timed(async { self.attempts.create_index(ttl()).await }),
            self.timed(async { self.budgets.create_index(ttl()).await }),
            self.timed(async { self.codes.create_index(ttl()).await }),
            self.timed(async { self.ceremonies.create_index(ttl()).await }),
        );
        a.and(b).and(c).and(d).and(e).and(f).map(|_| ())
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

fn patch_update(patch: &UserPatch, now: i64) -> Document {
    let mut set = doc! { "updated_at": now };
    let fields = [
        ("first_name", patch.first_name.as_ref().map(|v| v.as_str())),
        ("last_name", patch.last_name.as_ref().map(|v| v.as_str())),
        ("phone", patch.phone.as_ref().map(|v| v.as_str())),
        ("password_hash", patch.password_hash.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            set.insert(name, value);
        }
    }
    if let Some(v) = patch.phone_verified {
        set.insert("phone_verified", v);
    }
    let mut unset = Document::new();
    match &patch.middle_name {
        Some(Some(v)) => {
            set.insert("middle_name", v.as_str());
        }
        Some(None) => {
            unset.insert("middle_name", "");
        }
        None => {}
    }
    // A document from the Flask service keeps its hash in `password`: a new hash replaces it
    // rather than leaving the old one beside it.
    if patch.password_hash.is_some() {
        unset.insert("password", "");
    }
    match patch.disabled {
        Some(true) => {
            set.insert("disabled", true);
        }
        Some(false) => {
            unset.insert("disabled", "");
        }
        None => {}
    }
    match &patch.pending_phone {
        Some(Some(v)) => {
            set.insert("pending_phone", v.as_str());
        }
        Some(None) => {
            unset.insert("pending_phone", "");
        }
        None => {}
    }
    let mut update = Document::new();
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update.insert("$set", set);
    update
}

#[async_trait]
impl UserStore for MongoStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        // The unique index, not a lookup, decides whether the phone is free.
        self.ensure_indexes().await?;
        let d = user_doc(user);
        self.timed(async { self.users.insert_one(d).await })
            .await
            .map(|_| ())
    }

    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<UserRecord>, StoreError> {
        let found = self
            .timed(async { self.users.find_one(doc! { "phone": phone.as_str() }).await })
            .await?;
        // A document another service wrote with an id this one cannot address (a string
        // `_id`) is no account here: logged, and the login fails as for an unknown phone
        // instead of with a 500.
        Ok(found.as_ref().and_then(|d| match user_from_doc(d) {
            Ok(user) => Some(user),
            Err(e) => {
                tracing::warn!(error = %e, "user document skipped: unexpected shape");
                None
            }
        }))
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.timed(async { self.users.find_one(doc! { "_id": oid(id) }).await })
            .await?
            .as_ref()
            .map(user_from_doc)
            .transpose()
    }

    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        if patch.phone.is_some() {
            self.ensure_indexes().await?;
        }
        let update = patch_update(patch, now);
        self.timed(async {
            self.users
                .find_one_and_update(doc! { "_id": oid(id) }, update)
                .return_document(ReturnDocument::After)
                .await
        })
        .await?
        .as_ref()
        .map(user_from_doc)
        .transpose()
    }

    async fn delete_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.timed(async {
            self.users
                .find_one_and_delete(doc! { "_id": oid(id) })
                .await
        })
        .await?
        .as_ref()
        .map(user_from_doc)
        .transpose()
    }

    async fn users_after(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        // Only ObjectId ids compare with an ObjectId bound: documents with other ids (which
        // no request can address either) are not walked.
        let filter = match after {
            Some(a) => doc! { "_id": { "$gt": oid(a) } },
            None => doc! { "_id": { "$gte": ObjectId::from_bytes([0; 12]) } },
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let docs: Vec<Document> = self
            .timed(async {
                self.users
                    .find(filter)
                    .sort(doc! { "_id": 1 })
                    .limit(limit)
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        Ok(docs.iter().filter_map(|d| user_from_doc(d).ok()).collect())
    }

    async fn delete_unverified_user(
        &self,
        phone: &Phone,
        created_before: i64,
    ) -> Result<bool, StoreError> {
        let filter = doc! {
            "phone": phone.as_str(),
            "phone_verified": false,
            "created_at": { "$lt": created_before },
        };
        let r = self
            .timed(async { self.users.delete_one(filter).await })
            .await?;
        Ok(r.deleted_count == 1)
    }

    async fn find_user_by_pending_phone(
        &self,
        phone: &Phone,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.timed(async {
            self.users
                .find_one(doc! { "pending_phone": phone.as_str() })
                .await
        })
        .await?
        .as_ref()
        .map(user_from_doc)
        .transpose()
    }
}

#[async_trait]
impl CodeStore for MongoStore {
    async fn issue_code(
        &self,
        code: &CodeRecord,
        cooldown_secs: i64,
    ) -> Result<Issued, StoreError> {
        self.ensure_indexes().await?;
        let id = code_id(&code.purpose, &code.phone);
        let fields = doc! {
            "phone": &code.phone,
            "purpose": &code.purpose,
            "hash": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: code.hash.clone(),
            },
            "user_id": code.user_id.as_ref().map(oid),
            "sent_at": code.sent_at,
            "expires": code.expires_at,
            "expires_at": to_dt(code.expires_at),
            "attempts": 0_i32,
        };
        // Replace the code only if the previous one is older than the cooldown. A code in its
        // cooldown does not match the filter, so the upsert's insert collides with its `_id`
        // (E11000): that is how "too soon" comes back, decided by the server in one step.
        let replaced = self
            .timed(async {
                self.codes
                    .update_one(
                        doc! { "_id": &id, "sent_at": { "$lte": code.sent_at - cooldown_secs } },
                        doc! { "$set": fields.clone() },
                    )
                    .upsert(true)
                    .await
            })
            .await;
        match replaced {
            Ok(_) => Ok(Issued::Stored),
            Err(StoreError::Duplicate) => {
                let prev = self
                    .timed(async { self.codes.find_one(doc! { "_id": &id }).await })
                    .await?;
                let sent = prev.map_or(code.sent_at, |p| p.sent_at);
                Ok(Issued::Cooldown {
                    retry_after: (sent + cooldown_secs - code.sent_at).max(1),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn reserve_code_attempt(
        &self,
        purpose: &str,
        phone: &str,
        max_attempts: u32,
        now: i64,
    ) -> Result<CodeCheck, StoreError> {
        let id = code_id(purpose, phone);
        let reserved = self
            .timed(async {
                self.codes
                    .find_one_and_update(
                        doc! {
                            "_id": &id,
                            "expires": { "$gt": now },
                            "attempts": { "$lt": i64::from(max_attempts) },
                        },
                        doc! { "$inc": { "attempts": 1 } },
                    )
                    .return_document(ReturnDocument::After)
                    .await
            })
            .await?;
        Ok(match reserved {
            Some(d) => CodeCheck::Reserved(d.into()),
            None => CodeCheck::Unavailable,
        })
    }

    async fn delete_codes(&self, phone: &str) -> Result<u64, StoreError> {
        let r = self
            .timed(async { self.codes.delete_many(doc! { "phone": phone }).await })
            .await?;
        Ok(r.deleted_count)
    }

    async fn spend_code(
        &self,
        purpose: &str,
        phone: &str,
        hash: &[u8],
    ) -> Result<bool, StoreError> {
        let filter = doc! {
            "_id": code_id(purpose, phone),
            "hash": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: hash.to_vec(),
            },
        };
        let r = self
            .timed(async { self.codes.delete_one(filter).await })
            .await?;
        Ok(r.deleted_count == 1)
    }

    async fn live_code(
        &self,
        purpose: &str,
        phone: &str,
        now: i64,
    ) -> Result<Option<CodeRecord>, StoreError> {
        let id = code_id(purpose, phone);
        Ok(self
            .timed(async {
                self.codes
                    .find_one(doc! { "_id": &id, "expires": { "$gt": now } })
                    .await
            })
            .await?
            .map(Into::into))
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let d = SessionDoc::from(session);
        self.timed(async { self.sessions.insert_one(&d).await })
            .await
            .map(|_| ())
    }

    async fn find_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .timed(async { self.sessions.find_one(doc! { "_id": id }).await })
            .await?
            .map(SessionRecord::from))
    }

    async fn touch_session(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        let r = self
            .timed(async {
                self.sessions
                    .update_one(
                        doc! { "_id": id },
                        doc! { "$set": { "expires_at": to_dt(expires_at) } },
                    )
                    .await
            })
            .await?;
        Ok(r.matched_count == 1)
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let r = self
            .timed(async { self.sessions.delete_one(doc! { "_id": id }).await })
            .await?;
        Ok(r.deleted_count == 1)
    }

    async fn rotate_refresh(
        &self,
        id: &str,
        expected: &str,
        next: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let kept = i32::try_from(domain::store::SPENT_REFRESH_KEPT).unwrap_or(i32::MAX);
        Ok(self
            .timed(async {
                self.sessions
                    .find_one_and_update(
                        doc! { "_id": id, "refresh_digest": expected },
                        doc! {
                            "$set": {
                                "refresh_digest": next,
                                "refresh_prev": expected,
                                "refresh_rotated_at": now,
                                "expires_at": to_dt(expires_at),
                            },
                            "$push": { "refresh_spent": { "$each": [expected], "$slice": -kept } },
                        },
                    )
                    .return_document(ReturnDocument::After)
                    .await
            })
            .await?
            .map(SessionRecord::from))
    }

    async fn delete_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut filter = doc! { "user_id": oid(user) };
        if let Some(keep) = keep {
            filter.insert("_id", doc! { "$ne": keep });
        }
        let r = self
            .timed(async { self.sessions.delete_many(filter).await })
            .await?;
        Ok(r.deleted_count)
    }
}

#[async_trait]
impl LoginAttemptStore for MongoStore {
    async fn attempts(&self, key: &str) -> Result<Option<Attempts>, StoreError> {
        Ok(self
            .timed(async { self.attempts.find_one(doc! { "_id": key }).await })
            .await?
            .map(Attempts::from))
    }

    async fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<Reservation, StoreError> {
        let expires = to_dt(now.saturating_add(policy.memory_secs));
        let threshold = i64::from(policy.threshold);
        // One atomic update computes the new count and, from the threshold on, the lock it
        // sets, so no reservation can slip in between counting and locking. The filter
        // matches only an unlocked counter; on a locked one the upsert collides with the
        // existing `_id` (E11000), which is how "locked" comes back.
        let update = vec![
            doc! { "$set": {
                "failures": { "$add": [
                    { "$cond": [
                        { "$gt": [{ "$ifNull": ["$last_failure_at", i64::MIN] }, now - policy.memory_secs] },
                        { "$ifNull": ["$failures", 0] },
                        0,
                    ] },
                    1,
                ] },
                "last_failure_at": now,
                "expires_at": expires,
            } },
            doc! { "$set": {
                "locked_until": { "$cond": [
                    { "$gte": ["$failures", threshold] },
                    { "$toLong": { "$add": [now, { "$min": [
                        { "$pow": [2, { "$subtract": ["$failures", threshold] }] },
                        policy.max_lock_secs.max(1),
                    ] }] } },
                    { "$toLong": 0 },
                ] },
            } },
        ];
        // No upsert: a counter is first created at zero (a duplicate means another request
        // made it), then counted by the update above, so a racing insert never counts twice.
        for _ in 0..4 {
            let reserved = self
                .timed(async {
                    self.attempts
                        .find_one_and_update(
                            doc! { "_id": key, "$or": [
                                { "locked_until": { "$lte": now } },
                                { "locked_until": { "$exists": false } },
                            ] },
                            update.clone(),
                        )
                        .return_document(ReturnDocument::After)
                        .await
                })
                .await?;
            if let Some(d) = reserved {
                return Ok(Reservation::Granted {
                    attempt: d.failures,
                });
            }
            match self.attempts(key).await? {
                Some(a) if a.locked_until > now => {
                    return Ok(Reservation::Locked {
                        until: a.locked_until,
                    });
                }
                // Unlocked in between: count again.
                Some(_) => {}
                None => {
                    let fresh = AttemptDoc {
                        key: key.to_owned(),
                        failures: 0,
                        locked_until: 0,
                        last_failure_at: i64::MIN,
                        expires_at: expires,
                    };
                    match self
                        .timed(async { self.attempts.insert_one(&fresh).await })
                        .await
                    {
                        Ok(_) | Err(StoreError::Duplicate) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Err(StoreError::Other("attempt counter kept racing".to_owned()))
    }

    async fn clear_attempts(&self, key: &str) -> Result<(), StoreError> {
        self.timed(async { self.attempts.delete_one(doc! { "_id": key }).await })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl BudgetStore for MongoStore {
    async fn consume(
        &self,
        key: &str,
        limit: u32,
        window_secs: i64,
        now: i64,
    ) -> Result<Consumed, StoreError> {
        let (start, end) = window_of(now, window_secs);
        let id = format!("{key}#{start}");
        let exceeded = Consumed::Exceeded {
            retry_after: end - now,
        };
        if limit == 0 {
            return Ok(exceeded);
        }
        // Increment a counter still under the limit; else create it at 1. A refused use
        // matches nothing and writes nothing. Two first uses racing both try the insert: the
        // loser (E11000) goes round again, and a second miss then means the counter is full.
        let mut exists = false;
        for _ in 0..4 {
            let bumped = self
                .timed(async {
                    self.budgets
                        .find_one_and_update(
                            doc! { "_id": &id, "count": { "$lt": i64::from(limit) } },
                            doc! { "$inc": { "count": 1 } },
                        )
                        .return_document(ReturnDocument::After)
                        .await
                })
                .await?;
            if let Some(d) = bumped {
                return Ok(Consumed::Within { count: d.count });
            }
            if exists {
                return Ok(exceeded);
            }
            let fresh = BudgetDoc {
                id: id.clone(),
                count: 1,
                expires_at: to_dt(end),
            };
            match self
                .timed(async { self.budgets.insert_one(&fresh).await })
                .await
            {
                Ok(_) => return Ok(Consumed::Within { count: 1 }),
                Err(StoreError::Duplicate) => exists = true,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Other("budget counter kept racing".to_owned()))
    }

    async fn used(&self, key: &str, window_secs: i64, now: i64) -> Result<u32, StoreError> {
        let (start, _) = window_of(now, window_secs);
        let id = format!("{key}#{start}");
        Ok(self
            .timed(async { self.budgets.find_one(doc! { "_id": &id }).await })
            .await?
            .map_or(0, |d| d.count))
    }

    async fn release(&self, key: &str, window_secs: i64, now: i64) -> Result<(), StoreError> {
        let (start, _) = window_of(now, window_secs);
        let id = format!("{key}#{start}");
        let after = self
            .timed(async {
                self.budgets
                    .find_one_and_update(
                        doc! { "_id": &id, "count": { "$gt": 0 } },
                        doc! { "$inc": { "count": -1 } },
                    )
                    .return_document(ReturnDocument::After)
                    .await
            })
            .await?;
        // A counter given back to zero goes, so a refused request leaves no document. A use
        // racing in between makes the count positive again and the filter spares it.
        if after.is_some_and(|d| d.count == 0) {
            self.timed(async {
                self.budgets
                    .delete_one(doc! { "_id": &id, "count": { "$lte": 0 } })
                    .await
            })
            .await?;
        }
        Ok(())
    }

    async fn clear_budget(&self, key: &str) -> Result<(), StoreError> {
        // Every `<key>#<window start>`: ids from `<key>#` up to `<key>$` ('$' follows '#').
        let filter = doc! { "_id": { "$gt": format!("{key}#"), "$lt": format!("{key}$") } };
        self.timed(async { self.budgets.delete_many(filter).await })
            .await
            .map(|_| ())
    }
}

/// Lists index names of the users collection (tests check the unique index exists).
pub async fn user_index_names(store: &MongoStore) -> Result<Vec<String>, StoreError> {
    let cursor = store
        .timed(async { store.users.list_indexes().await })
        .await?;
    let indexes: Vec<IndexModel> = store.timed(cursor.try_collect()).await?;
    Ok(indexes
        .into_iter()
        .filter_map(|i| i.options.and_then(|o| o.name))
        .collect())
}
