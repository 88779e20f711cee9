//! Lifecycle events through the AWS emulator: each change's event is written with it (the
//! outbox), delivered by the request that made it, or by the drain (the real `events-drain`
//! binary, `user-admin drain-events`) when the bus was down; never lost, marked sent only once
//! EventBridge accepted it; an EventBridge rule routes them to an SQS queue the tests read.

use std::collections::HashSet;

use api_tests::{
    bus::{EventQueue, by_id},
    runtime::{Function, Outcome, binary},
    *,
};
use futures::TryStreamExt;
use serde_json::json;

/// An app on MongoDB whose events go to `endpoint` (the emulator, or a dead port) from
/// `source`.
async fn app(endpoint: &str, source: &str) -> TestApp {
    let app = TestApp::with(Backend::Mongo, |v| events_vars(v, endpoint, source)).await;
    let publisher = adapters::eventbridge::publisher(&app.state.settings.events);
    TestApp {
        state: app.state.with_publisher(publisher),
        clock: app.clock,
    }
}

fn events_vars(v: &mut domain::config::Vars, endpoint: &str, source: &str) {
    v.set("EVENTS_BUS", "default");
    v.set("EVENTS_SOURCE", source);
    v.set("EVENTS_TIMEOUT_MS", "2000");
    v.set("EVENTS_DRAIN_MIN_AGE_SECONDS", "0");
    v.set("AWS_REGION", "us-east-1");
    v.set("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint);
}

/// A loopback address nothing listens on: EventBridge unreachable.
fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

async fn outbox_left(app: &TestApp) -> usize {
    app.state
        .store
        .pending_events(i64::MAX, 1000)
        .await
        .unwrap()
        .len()
}

fn phone_n(i: usize) -> String {
    format!("+1202555{:04}", i)
}

#[tokio::test]
async fn two_hundred_signups_with_the_bus_down_for_half_deliver_each_user_created_event() {
    let queue = EventQueue::start().await;
    let down = app(&dead_endpoint(), &queue.source).await;
    let up = {
        let other = down.second_instance().await;
        let publisher = adapters::eventbridge::publisher(&events_settings(&queue.source));
        TestApp {
            state: other.state.with_publisher(publisher),
            clock: other.clock,
        }
    };
    let mut made = HashSet::new();
    // Twenty at a time: the first hundred while EventBridge cannot be reached, the second
    // hundred once it is back.
    for round in 0..10 {
        let target = if round < 5 { &down } else { &up };
        let phones: Vec<String> = (0..20).map(|i| phone_n(round * 20 + i)).collect();
        let answers = futures::future::join_all(phones.iter().map(|p| target.signup(p))).await;
        for a in answers {
            assert_eq!(a.status, 201, "{:?}", a.body);
            made.insert(a.body["_id"]["$oid"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        outbox_left(&up).await,
        100,
        "the first hundred wait in the outbox"
    );
    let before = queue.drain().await;
    assert_eq!(
        before.len(),
        100,
        "the second hundred went out with their requests"
    );

    // The real drain function, scheduled: it delivers what was left.
    let drain = Function::spawn(
        &binary("events-drain"),
        "events-drain",
        &drain_env(&up, &aws_endpoint(), &queue.source),
        "warn",
    )
    .await;
    let answer = match drain
        .runtime
        .invoke(&json!({"source": "aws.scheduler"}))
        .await
    {
        Outcome::Response(r) => r,
        Outcome::Error(e) => panic!("the drain failed: {e}"),
    };
    assert_eq!(answer["sent"], 100, "{answer}");
    assert_eq!(
        outbox_left(&up).await,
        0,
        "nothing is left once the bus took it"
    );

    let mut all = before;
    all.extend(queue.drain().await);
    let events = by_id(&all);
    let created: HashSet<String> = events
        .values()
        .filter(|(d, _)| d["type"] == "user.created")
        .map(|(d, _)| d["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 200, "one event per signup, none lost");
    assert_eq!(created, made, "each account's user.created, and no other");
    for e in &all {
        assert_eq!(e["source"], queue.source.as_str());
        assert_eq!(e["detail-type"], "user.created");
    }
}

fn events_settings(source: &str) -> domain::events::EventSettings {
    let mut v = vars();
    events_vars(&mut v, &aws_endpoint(), source);
    domain::events::EventSettings::from_vars(&v).unwrap()
}

/// The environment of a function binary on `app`'s database, its events to `endpoint`.
fn drain_env(app: &TestApp, endpoint: &str, source: &str) -> Vec<(String, String)> {
    [
        ("MONGO_URI", mongo_uri()),
        ("DB_NAME", app.state.settings.db_name.clone()),
        ("JWT_SECRET_KEY", JWT_KEY.to_owned()),
        ("SESSION_SECRET_KEY", SESSION_KEY.to_owned()),
        ("EVENTS_BUS", "default".to_owned()),
        ("EVENTS_SOURCE", source.to_owned()),
        ("EVENTS_DRAIN_MIN_AGE_SECONDS", "0".to_owned()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test]
async fn each_kind_of_change_is_reported_by_its_own_event_without_secrets() {
    let queue = EventQueue::start().await;
    let app = app(&aws_endpoint(), &queue.source).await;
    let phone = "+12025550377";
    let first = app.signed_in(phone).await;
    let second = Login::of(&app.login(phone, "securepassword123").await);
    assert_eq!(
        app.put_user(&first, json!({"last_name": "Smythe"}))
            .await
            .status,
        200
    );
    let changed = app
        .put_user(
            &first,
            json!({"password": "a brand new passphrase", "current_password": "securepassword123"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let out = app
        .call(&with_auth(
            event("logout"),
            &first.token,
            &first.session_token,
        ))
        .await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    // The operator's tool: its changes are delivered when it is done, as a request's are.
    let env = drain_env(&app, &aws_endpoint(), &queue.source);
    let db = app.state.settings.db_name.clone();
    for args in [
        vec!["disable", first.id.as_str()],
        vec!["enable", first.id.as_str()],
        vec!["set-roles", first.id.as_str(), "editor"],
        vec!["delete", first.id.as_str()],
        vec!["drain-events"],
    ] {
        let (code, _, err) = user_admin_with(&db, &env, &args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let _ = second;
    let events = by_id(&queue.drain().await);
    let mut kinds: Vec<String> = events
        .values()
        .map(|(d, _)| {
            assert_eq!(d["user_id"], first.id.as_str(), "{d}");
            let text = d.to_string();
            for secret in [
                "securepassword123",
                "brand new",
                "2025550377",
                &first.session_token,
            ] {
                assert!(!text.contains(secret), "{d} shows {secret}");
            }
            d["type"].as_str().unwrap().to_owned()
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "password.changed",
            "session.revoked",
            "session.revoked",
            "user.created",
            "user.deleted",
            "user.disabled",
            "user.enabled",
            "user.updated",
            "user.updated",
        ],
        "{events:?}"
    );
    assert_eq!(outbox_left(&app).await, 0);
}

#[tokio::test]
async fn a_deletion_that_crashed_after_staging_its_event_is_never_reported() {
    use mongodb::bson::{doc, oid::ObjectId};
    let queue = EventQueue::start().await;
    let app = app(&aws_endpoint(), &queue.source).await;
    let kept = app.signed_in("+12025550378").await;
    queue.drain().await;
    let now = app.state.clock.now();
    let staged = mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&app.state.settings.db_name)
        .collection::<mongodb::bson::Document>("User_outbox");
    let stage = |id: &str, user: ObjectId, at: i64| {
        doc! { "_id": id, "type": "user.deleted", "at": at, "data": {}, "user_id": user,
        "until": "user_absent" }
    };
    let alive = ObjectId::parse_str(&kept.id).unwrap();
    let gone = ObjectId::new();
    staged
        .insert_many([
            // The process died between staging and deleting: the user is still there.
            stage("evt_crashed_long_ago", alive, now - 600),
            // Staged a moment ago: its deletion may still be on its way.
            stage("evt_in_flight", alive, now - 5),
            // Deleted, but the process died before delivering.
            stage("evt_deleted_undelivered", gone, now - 5),
        ])
        .await
        .unwrap();
    let d = app
        .state
        .drain_events(std::time::Duration::from_secs(5))
        .await;
    assert_eq!((d.sent, d.dropped), (1, 1), "{d:?}");
    let delivered = by_id(&queue.drain().await);
    assert_eq!(
        delivered.keys().collect::<Vec<_>>(),
        ["evt_deleted_undelivered"]
    );
    let left: Vec<String> = staged
        .find(doc! {})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|d| d.get_str("_id").unwrap().to_owned())
        .collect();
    assert_eq!(left, ["evt_in_flight"], "waiting for its deletion");
}
