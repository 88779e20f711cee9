//! Delivery: the request's journal of what the stores wrote, and the relay that publishes
//! pending events in tens and marks sent only what the bus accepted (see the module above).

use std::{sync::Arc, time::Duration};

use super::{Event, EventPublisher, OutboxStore, Pending, STAGE_GRACE_SECS};

/// What the stores wrote during one request, for the relay to deliver when it is done.
pub mod journal {
    use std::{cell::RefCell, future::Future};

    use super::Pending;

    tokio::task_local! {
        static WRITTEN: RefCell<Vec<Pending>>;
    }

    /// Runs `f` with a journal; answers its output and what was written.
    pub async fn scope<F: Future>(f: F) -> (F::Output, Vec<Pending>) {
        WRITTEN
            .scope(RefCell::new(Vec::new()), async {
                let out = f.await;
                let written = WRITTEN.with(|w| w.take());
                (out, written)
            })
            .await
    }

    /// Notes events a store wrote (nothing outside a scope: the drain, tools).
    pub fn record(written: impl IntoIterator<Item = Pending>) {
        let _ = WRITTEN.try_with(|w| w.borrow_mut().extend(written));
    }
}

/// Delivers pending events: publishes them in tens, marks sent what the bus accepted.
#[derive(Clone)]
pub struct Relay {
    pub publisher: Arc<dyn EventPublisher>,
    pub store: Arc<dyn OutboxStore>,
}

/// What one delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub dropped: usize,
    /// Not accepted (the bus unreachable, an entry refused): still pending.
    pub failed: usize,
    /// Staged events whose deletion has not happened (yet): still pending.
    pub waiting: usize,
}

impl Relay {
    /// Delivers `pending`: a staged event only once its deletion happened (dropped if it has
    /// not after [`STAGE_GRACE_SECS`]). Failures leave events pending; nothing is lost.
    pub async fn deliver(&self, pending: Vec<Pending>, now: i64) -> Delivered {
        let mut done = Delivered::default();
        let mut ready = Vec::new();
        let mut dropped = Vec::new();
        for p in pending {
            if let Pending::Staged(e, until) = &p {
                match self.store.deletion_done(e, until).await {
                    Ok(true) => {}
                    Ok(false) if now - e.at > STAGE_GRACE_SECS => {
                        dropped.push(p);
                        continue;
                    }
                    Ok(false) => {
                        done.waiting += 1;
                        continue;
                    }
                    Err(_) => {
                        done.failed += 1;
                        continue;
                    }
                }
            }
            ready.push(p);
        }
        if !dropped.is_empty() && self.store.mark_sent(&dropped).await.is_ok() {
            done.dropped = dropped.len();
        }
        for batch in ready.chunks(10) {
            let events: Vec<Event> = batch.iter().map(|p| p.event().clone()).collect();
            let accepted = match self.publisher.publish(&events).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, count = events.len(), "events left for the drain");
                    done.failed += batch.len();
                    continue;
                }
            };
            let sent: Vec<Pending> = batch
                .iter()
                .filter(|p| accepted.contains(&p.event().id))
                .cloned()
                .collect();
            done.failed += batch.len() - sent.len();
            match self.store.mark_sent(&sent).await {
                // Published but not marked: delivered again later, same ids.
                Err(e) => {
                    tracing::warn!(error = %e, "sent events not marked; they will repeat");
                }
                Ok(()) => done.sent += sent.len(),
            }
        }
        done
    }

    /// The scheduled drain: delivers every event made at or before `made_before`, a page at
    /// a time, retrying a failed page with backoff (0.2 s, doubling) until `deadline`.
    pub async fn drain(
        &self,
        made_before: i64,
        now: i64,
        deadline: tokio::time::Instant,
    ) -> Delivered {
        let mut total = Delivered::default();
        let mut backoff = Duration::from_millis(200);
        loop {
            let page = match self.store.pending_events(made_before, 100).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "drain: the outbox could not be read");
                    break;
                }
            };
            if page.is_empty() {
                break;
            }
            let d = self.deliver(page, now).await;
            total.sent += d.sent;
            total.dropped += d.dropped;
            total.waiting = d.waiting;
            if d.sent + d.dropped == 0 {
                total.failed = d.failed;
                // Only staged events waiting for their deletions: nothing to retry now.
                if d.failed == 0 || tokio::time::Instant::now() + backoff >= deadline {
                    break;
                }
                // The bus refused or could not be reached: back off and try again.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                backoff = Duration::from_millis(200);
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        tracing::info!(target: "audit", event = "events_drain", sent = total.sent,
            dropped = total.dropped, failed = total.failed, waiting = total.waiting);
        total
    }
}
