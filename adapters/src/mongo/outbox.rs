//! The outbox in MongoDB. A user document's events ride in its own `outbox` array, pushed by
//! the same atomic update as the change (so both land or neither does); a deletion's event is
//! staged first in `<collection>_outbox` with the condition that proves the deletion (see
//! `domain::events`). Delivered events are pulled (or the staged document deleted) only after
//! the bus accepted them.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;

use domain::{
    events::{Event, EventKind, OutboxStore, Pending, Until, journal},
    store::StoreError,
    types::UserId,
};

use super::{
    MongoStore, oid,
    users::{UPDATE_TRIES, int},
    wall_now,
};

/// One event as stored (in a user's `outbox`, or staged).
pub(super) fn event_doc(e: &Event) -> Document {
    let data = mongodb::bson::to_document(&e.data).unwrap_or_default();
    doc! { "id": &e.id, "type": e.kind.as_str(), "at": e.at, "data": data }
}

fn event_from(d: &Document, user: UserId) -> Option<Event> {
    let data = d
        .get_document("data")
        .ok()
        .and_then(|d| serde_json::to_value(d).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    Some(Event {
        id: d.get_str("id").ok()?.to_owned(),
        kind: EventKind::parse(d.get_str("type").ok()?)?,
        user_id: user,
        at: d.get_i64("at").ok()?,
        data,
    })
}

/// Adds `$push: {outbox: {$each: events}}` to `update` (nothing when there are none).
pub(super) fn push_events(update: &mut Document, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let each: Vec<Bson> = events
        .iter()
        .map(|e| Bson::Document(event_doc(e)))
        .collect();
    update.insert("$push", doc! { "outbox": { "$each": each } });
}

fn user_of(d: &Document) -> Option<UserId> {
    d.get_object_id("_id")
        .ok()
        .map(|o| UserId::from_bytes(o.bytes()))
}

impl MongoStore {
    /// Stages `user.deleted` for `user` (events on); what [`MongoStore::staged_done`] takes.
    pub(super) async fn stage_deletion(
        &self,
        user: UserId,
        data: serde_json::Value,
    ) -> Result<Option<(Event, Until)>, StoreError> {
        if !self.events_on {
            return Ok(None);
        }
        let e = Event::new(EventKind::UserDeleted, user, wall_now(), data);
        self.stage(&e, &Until::UserAbsent).await?;
        Ok(Some((e, Until::UserAbsent)))
    }

    /// After a staged deletion: journaled if it deleted, else taken back.
    pub(super) async fn staged_done(
        &self,
        staged: Option<(Event, Until)>,
        deleted: bool,
    ) -> Result<(), StoreError> {
        let Some((e, until)) = staged else {
            return Ok(());
        };
        if deleted {
            journal::record([Pending::Staged(e, until)]);
            Ok(())
        } else {
            self.unstage(&e).await
        }
    }

    /// With events on, a user's deletion: the document's undelivered events are copied out
    /// and `user.deleted` staged, then the document read is deleted (its `rev`: a change
    /// landing in between, with events of its own, makes the delete miss and the whole go
    /// again). The deleted document, or `None` when there was none.
    pub(super) async fn delete_reported(
        &self,
        id: &UserId,
    ) -> Result<Option<Document>, StoreError> {
        let c = self.db()?;
        for _ in 0..UPDATE_TRIES {
            let Some(d) = self
                .timed(async { c.users.find_one(doc! { "_id": oid(id) }).await })
                .await?
            else {
                return Ok(None);
            };
            self.carry_out(&d).await?;
            let staged = self.stage_deletion(*id, serde_json::json!({})).await?;
            let filter = match int(&d, "rev") {
                Some(r) => doc! { "_id": oid(id), "rev": r },
                None => doc! { "_id": oid(id), "rev": { "$exists": false } },
            };
            let gone = self
                .timed(async { c.users.find_one_and_delete(filter).await })
                .await?;
            self.staged_done(staged, gone.is_some()).await?;
            if gone.is_some() {
                return Ok(gone);
            }
        }
        Err(StoreError::Unavailable(
            "user delete contended; try again".to_owned(),
        ))
    }
    /// Stages `event` ahead of the deletion `until` names.
    pub(super) async fn stage(&self, event: &Event, until: &Until) -> Result<(), StoreError> {
        let c = self.db()?;
        let mut d = event_doc(event);
        let id = d.remove("id").unwrap_or(Bson::Null);
        d.insert("_id", id);
        d.insert("user_id", oid(&event.user_id));
        match until {
            Until::Done => d.insert("until", "done"),
            Until::UserAbsent => d.insert("until", "user_absent"),
            Until::SessionsAbsent(ids) => {
                d.insert("until", "sessions_absent");
                d.insert("sessions", ids.clone())
            }
        };
        // Staged twice (a retried deletion): one event, one record.
        match self.timed(async { c.outbox.insert_one(d).await }).await {
            Ok(_) | Err(StoreError::Duplicate) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Copies the undelivered events of the user document `d` out before it is deleted
    /// (they happened; deleting the document must not lose them).
    pub(super) async fn carry_out(&self, d: &Document) -> Result<(), StoreError> {
        let Some(user) = user_of(d) else {
            return Ok(());
        };
        for e in d.get_array("outbox").into_iter().flatten() {
            if let Some(e) = e.as_document().and_then(|e| event_from(e, user)) {
                self.stage(&e, &Until::Done).await?;
            }
        }
        Ok(())
    }

    /// Takes a staged event back (its deletion found nothing to delete).
    pub(super) async fn unstage(&self, event: &Event) -> Result<(), StoreError> {
        let c = self.db()?;
        self.timed(async { c.outbox.delete_one(doc! { "_id": &event.id }).await })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl OutboxStore for MongoStore {
    async fn pending_events(
        &self,
        made_before: i64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        let c = self.db()?;
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        let users: Vec<Document> = self
            .timed(async {
                c.users
                    .find(doc! { "outbox.at": { "$lte": made_before } })
                    .projection(doc! { "outbox": 1 })
                    .limit(n)
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        let mut out = Vec::new();
        for u in &users {
            let Some(user) = user_of(u) else { continue };
            for e in u.get_array("outbox").into_iter().flatten() {
                if let Some(e) = e.as_document().and_then(|d| event_from(d, user))
                    && e.at <= made_before
                {
                    out.push(Pending::Embedded(e));
                }
            }
        }
        let left = limit.saturating_sub(out.len());
        if left > 0 {
            let staged: Vec<Document> = self
                .timed(async {
                    c.outbox
                        .find(doc! { "at": { "$lte": made_before } })
                        .sort(doc! { "at": 1 })
                        .limit(i64::try_from(left).unwrap_or(i64::MAX))
                        .await?
                        .try_collect()
                        .await
                })
                .await?;
            for mut d in staged {
                let (Ok(id), Ok(user)) = (
                    d.get_str("_id").map(str::to_owned),
                    d.get_object_id("user_id"),
                ) else {
                    continue;
                };
                d.insert("id", id);
                let Some(e) = event_from(&d, UserId::from_bytes(user.bytes())) else {
                    continue;
                };
                let until = match d.get_str("until") {
                    Ok("done") => Until::Done,
                    Ok("user_absent") => Until::UserAbsent,
                    _ => Until::SessionsAbsent(
                        d.get_array("sessions")
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect(),
                    ),
                };
                out.push(Pending::Staged(e, until));
            }
        }
        Ok(out)
    }

    async fn deletion_done(&self, event: &Event, until: &Until) -> Result<bool, StoreError> {
        let c = self.db()?;
        let left = match until {
            Until::Done => 0,
            Until::UserAbsent => {
                self.timed(async {
                    c.users
                        .count_documents(doc! { "_id": oid(&event.user_id) })
                        .await
                })
                .await?
            }
            Until::SessionsAbsent(ids) => {
                self.timed(async {
                    c.sessions
                        .count_documents(doc! { "_id": { "$in": ids.clone() } })
                        .await
                })
                .await?
            }
        };
        Ok(left == 0)
    }

    async fn mark_sent(&self, sent: &[Pending]) -> Result<(), StoreError> {
        let c = self.db()?;
        let mut by_user: std::collections::HashMap<UserId, Vec<String>> = Default::default();
        let mut staged = Vec::new();
        for p in sent {
            match p {
                Pending::Embedded(e) => by_user.entry(e.user_id).or_default().push(e.id.clone()),
                Pending::Staged(e, _) => staged.push(e.id.clone()),
            }
        }
        for (user, ids) in by_user {
            self.timed(async {
                c.users
                    .update_one(
                        doc! { "_id": oid(&user) },
                        doc! { "$pull": { "outbox": { "id": { "$in": ids } } } },
                    )
                    .await
            })
            .await?;
        }
        if !staged.is_empty() {
            self.timed(async {
                c.outbox
                    .delete_many(doc! { "_id": { "$in": staged } })
                    .await
            })
            .await?;
        }
        Ok(())
    }
}
