//! Password-check counters and budgets: one atomic `findOneAndUpdate` each, so a limit holds
//! across instances.

use async_trait::async_trait;
use mongodb::{
    bson::{DateTime, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use domain::store::{
    AttemptPolicy, Attempts, BudgetStore, Consumed, LoginAttemptStore, Reservation, StoreError,
    window_of,
};

use super::{MongoStore, to_dt};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AttemptDoc {
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
pub(super) struct BudgetDoc {
    #[serde(rename = "_id")]
    id: String,
    count: u32,
    expires_at: DateTime,
}

#[async_trait]
impl LoginAttemptStore for MongoStore {
    async fn attempts(&self, key: &str) -> Result<Option<Attempts>, StoreError> {
        let c = self.db()?;
        Ok(self
            .timed(async { c.attempts.find_one(doc! { "_id": key }).await })
            .await?
            .map(Attempts::from))
    }

    async fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<Reservation, StoreError> {
        let c = self.db()?;
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
                    c.attempts
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
                        .timed(async { c.attempts.insert_one(&fresh).await })
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
        let c = self.db()?;
        self.timed(async { c.attempts.delete_one(doc! { "_id": key }).await })
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
        let c = self.db()?;
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
                    c.budgets
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
                .timed(async { c.budgets.insert_one(&fresh).await })
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
        let c = self.db()?;
        let (start, _) = window_of(now, window_secs);
        let id = format!("{key}#{start}");
        Ok(self
            .timed(async { c.budgets.find_one(doc! { "_id": &id }).await })
            .await?
            .map_or(0, |d| d.count))
    }

    async fn release(&self, key: &str, window_secs: i64, now: i64) -> Result<(), StoreError> {
        let c = self.db()?;
        let (start, _) = window_of(now, window_secs);
        let id = format!("{key}#{start}");
        let after = self
            .timed(async {
                c.budgets
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
                c.budgets
                    .delete_one(doc! { "_id": &id, "count": { "$lte": 0 } })
                    .await
            })
            .await?;
        }
        Ok(())
    }

    async fn clear_budget(&self, key: &str) -> Result<(), StoreError> {
        let c = self.db()?;
        // Every `<key>#<window start>`: ids from `<key>#` up to `<key>$` ('$' follows '#').
        let filter = doc! { "_id": { "$gt": format!("{key}#"), "$lt": format!("{key}$") } };
        self.timed(async { c.budgets.delete_many(filter).await })
            .await
            .map(|_| ())
    }
}
