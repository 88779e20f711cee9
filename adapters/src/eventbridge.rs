//! Lifecycle events to Amazon EventBridge: `PutEvents` with up to ten entries, `source` and
//! bus from the settings, `detail-type` the event's type, `detail` its JSON (with the `id`
//! consumers deduplicate on). An entry EventBridge refuses (its `ErrorCode`) stays pending;
//! only accepted ids are answered. No SDK retries: the relay retries with backoff, and the
//! drain catches anything a request could not deliver.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eventbridge::{Client, types::PutEventsRequestEntry};

use domain::events::{Event, EventPublisher, EventSettings, PublishError};

/// Publishes to one bus.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
    source: String,
    timeout: std::time::Duration,
}

impl EventBridgePublisher {
    /// A publisher for `settings`' bus; `None` when no bus is set.
    pub fn new(settings: &EventSettings) -> Option<Self> {
        let bus = settings.bus.clone()?;
        let sdk = crate::sender_sdk_config(
            &settings.region,
            settings.endpoint.as_deref(),
            settings.timeout,
        );
        Some(Self {
            client: Client::new(&sdk),
            bus,
            source: settings.source.clone(),
            timeout: settings.timeout,
        })
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[Event]) -> Result<Vec<String>, PublishError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<PutEventsRequestEntry> = events
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&self.source)
                    .detail_type(e.kind.as_str())
                    .detail(e.detail().to_string())
                    .build()
            })
            .collect();
        let call = self.client.put_events().set_entries(Some(entries)).send();
        let out = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| PublishError("PutEvents timed out".into()))?
            .map_err(|e| {
                use aws_sdk_eventbridge::error::ProvideErrorMetadata;
                PublishError(e.code().unwrap_or("PutEvents failed").to_owned())
            })?;
        // Entries answer in request order; one with an error code was not accepted.
        Ok(out
            .entries()
            .iter()
            .zip(events)
            .filter(|(r, _)| r.error_code().is_none() && r.event_id().is_some())
            .map(|(_, e)| e.id.clone())
            .collect())
    }
}

/// The process's publisher: a [`domain::events::MakePublisher`].
pub fn publisher(settings: &EventSettings) -> Option<Arc<dyn EventPublisher>> {
    EventBridgePublisher::new(settings).map(|p| Arc::new(p) as Arc<dyn EventPublisher>)
}
