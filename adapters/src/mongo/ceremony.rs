//! Ceremonies in `<collection>_ceremonies`: taken with one `findOneAndDelete` whose filter
//! names the kind and an unexpired deadline, so a take is atomic on every instance and finds
//! nothing after expiry; the TTL index on `expires_at` removes what nobody took.

use async_trait::async_trait;
use domain::{
    store::{Ceremony, CeremonyId, CeremonyKind, CeremonyStore, StoreError},
    types::UserId,
};
use mongodb::bson::{Binary, DateTime, doc, oid::ObjectId, spec::BinarySubtype};
use serde::{Deserialize, Serialize};

use super::{MongoStore, oid, to_dt};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CeremonyDoc {
    #[serde(rename = "_id")]
    id: String,
    kind: String,
    #[serde(default)]
    user_id: Option<ObjectId>,
    state: Binary,
    /// Unix seconds, compared in the take's filter; `expires_at` is the same instant for the
    /// TTL index.
    expires: i64,
    expires_at: DateTime,
}

impl From<&Ceremony> for CeremonyDoc {
    fn from(c: &Ceremony) -> Self {
        Self {
            id: c.id.as_str().to_owned(),
            kind: c.kind.as_str().to_owned(),
            user_id: c.user_id.as_ref().map(oid),
            state: Binary {
                subtype: BinarySubtype::Generic,
                bytes: c.state.clone(),
            },
            expires: c.expires_at,
            expires_at: to_dt(c.expires_at),
        }
    }
}

impl TryFrom<CeremonyDoc> for Ceremony {
    type Error = StoreError;

    fn try_from(d: CeremonyDoc) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Other(format!("ceremony document with {what}"));
        Ok(Self {
            id: CeremonyId::parse(&d.id).ok_or_else(|| bad("a malformed id"))?,
            kind: CeremonyKind::from_name(&d.kind).ok_or_else(|| bad("an unknown kind"))?,
            user_id: d.user_id.map(|o| UserId::from_bytes(o.bytes())),
            state: d.state.bytes,
            expires_at: d.expires,
        })
    }
}

/// The ceremony `id` of `kind`, if it has not expired at `now`.
fn live(id: &CeremonyId, kind: CeremonyKind, now: i64) -> mongodb::bson::Document {
    doc! { "_id": id.as_str(), "kind": kind.as_str(), "expires": { "$gt": now } }
}

#[async_trait]
impl CeremonyStore for MongoStore {
    async fn put_ceremony(&self, ceremony: &Ceremony, _now: i64) -> Result<(), StoreError> {
        let c = self.db()?;
        // Expired ones are the TTL index's to remove.
        let doc = CeremonyDoc::from(ceremony);
        self.timed(async { c.ceremonies.insert_one(&doc).await })
            .await
            .map(|_| ())
    }

    async fn take_ceremony(
        &self,
        id: &CeremonyId,
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<Ceremony>, StoreError> {
        let c = self.db()?;
        let filter = live(id, kind, now);
        let taken = self
            .timed(async { c.ceremonies.find_one_and_delete(filter).await })
            .await?;
        taken.map(Ceremony::try_from).transpose()
    }

    async fn find_ceremony(
        &self,
        id: &CeremonyId,
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<Ceremony>, StoreError> {
        let c = self.db()?;
        let filter = live(id, kind, now);
        let found = self
            .timed(async { c.ceremonies.find_one(filter).await })
            .await?;
        found.map(Ceremony::try_from).transpose()
    }
}
