//! An EventBridge rule on the AWS emulator that routes one source's events to an SQS queue,
//! and the queue read back: what a consumer of the lifecycle events would see. Spoken in the
//! AWS JSON protocols over HTTP (the emulator checks no signature).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::aws_endpoint;

async fn call(service: &str, target: &str, json_version: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/", aws_endpoint()))
        .header("x-amz-target", target)
        .header("content-type", format!("application/x-amz-json-{json_version}"))
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{target}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A queue receiving every event of `source` on the default bus.
pub struct EventQueue {
    pub source: String,
    url: String,
}

impl EventQueue {
    /// A fresh source name, a queue, and the rule between them.
    pub async fn start() -> Self {
        let name = format!("events-{}", crate::fresh_db().replace('_', "-"));
        let created = call(
            "sqs",
            "AmazonSQS.CreateQueue",
            "1.0",
            json!({"QueueName": name}),
        )
        .await;
        let url = created["QueueUrl"].as_str().unwrap().to_owned();
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        let source = format!("user-api.{name}");
        call(
            "events",
            "AWSEvents.PutRule",
            "1.1",
            json!({"Name": name, "EventBusName": "default",
                "EventPattern": json!({"source": [source]}).to_string()}),
        )
        .await;
        call(
            "events",
            "AWSEvents.PutTargets",
            "1.1",
            json!({"Rule": name, "EventBusName": "default",
                "Targets": [{"Id": "queue", "Arn": arn}]}),
        )
        .await;
        Self { source, url }
    }

    /// Every event delivered so far (the EventBridge envelopes), each message taken once.
    pub async fn drain(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let got = call(
                "sqs",
                "AmazonSQS.ReceiveMessage",
                "1.0",
                json!({"QueueUrl": self.url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0,
                    "VisibilityTimeout": 300}),
            )
            .await;
            let messages = got["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(serde_json::from_str(m["Body"].as_str().unwrap()).unwrap());
                call(
                    "sqs",
                    "AmazonSQS.DeleteMessage",
                    "1.0",
                    json!({"QueueUrl": self.url, "ReceiptHandle": m["ReceiptHandle"]}),
                )
                .await;
            }
        }
    }
}

/// Events by their `detail.id`, with how many times each came.
pub fn by_id(envelopes: &[Value]) -> HashMap<String, (Value, usize)> {
    let mut m: HashMap<String, (Value, usize)> = HashMap::new();
    for e in envelopes {
        let id = e["detail"]["id"].as_str().unwrap().to_owned();
        let entry = m.entry(id).or_insert((e["detail"].clone(), 0));
        assert_eq!(entry.0, e["detail"], "one id, one event");
        entry.1 += 1;
    }
    m
}
