//! Limits tried the way an attacker works: many requests at once, on two instances, with the
//! phone changed in between. Each limit must hold under all of that, not one request at a time.

use std::time::{Duration, Instant};

use api_tests::*;
use futures::future::join_all;
use serde_json::json;

/// Statuses of `answers`, counted.
fn tally(answers: &[Answer]) -> std::collections::BTreeMap<u16, usize> {
    let mut t = std::collections::BTreeMap::new();
    for a in answers {
        *t.entry(a.status.as_u16()).or_default() += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_simultaneous_logins_on_two_instances_get_at_most_five_password_checks() {
    let a = TestApp::mongo().await;
    let b = a.second_instance().await;
    a.signed_in("1234567890").await;
    // 39 wrong passwords and the right one, all at once, half on each instance.
    let answers = join_all((0..40).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let pw = if i == 20 {
            "securepassword123"
        } else {
            "wrong-password"
        };
        app.login("1234567890", pw)
    }))
    .await;
    let t = tally(&answers);
    let checked = t.get(&401).unwrap_or(&0) + t.get(&200).unwrap_or(&0);
    assert!(
        checked <= 5,
        "{t:?}: more password checks ran than the threshold"
    );
    assert_eq!(checked + t.get(&429).unwrap_or(&0), 40, "{t:?}");
    assert!(
        answers
            .iter()
            .filter(|x| x.status == 429)
            .all(|x| x.headers.contains_key("retry-after"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_simultaneous_wrong_current_passwords_get_at_most_five_checks() {
    let a = TestApp::mongo().await;
    let b = a.second_instance().await;
    let stolen = a.signed_in("1234567890").await;
    let answers = join_all((0..40).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.put_user(
            &stolen,
            json!({"password": "a brand new passphrase", "current_password": format!("guess-{i}")}),
        )
    }))
    .await;
    let t = tally(&answers);
    assert!(*t.get(&403).unwrap_or(&0) <= 5, "{t:?}");
    assert_eq!(
        t.get(&403).unwrap_or(&0) + t.get(&429).unwrap_or(&0),
        40,
        "{t:?}"
    );
    // The owner's password is unchanged.
    assert_eq!(a.login("1234567890", "securepassword123").await.status, 200);
}

#[tokio::test]
async fn changing_the_phone_gives_a_stolen_session_no_fresh_guesses() {
    let app = TestApp::mongo().await;
    let stolen = app.signed_in("1234567890").await;
    for i in 0..5 {
        let a = app
            .put_user(
                &stolen,
                json!({"phone": format!("55500000{i:02}"), "current_password": "nope-nope"}),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (403, "current_password_incorrect")
        );
    }
    // A phone change needs the password: without it there is nothing to guess with.
    let free = app.put_user(&stolen, json!({"phone": "5550009999"})).await;
    assert_eq!(
        (free.status.as_u16(), free.code()),
        (400, "validation_failed")
    );
    // The lock is the user's, not the phone's: a password change is refused as well.
    let again = app
        .put_user(
            &stolen,
            json!({"password": "a brand new passphrase", "current_password": "guess-6"}),
        )
        .await;
    assert_eq!(again.status, 429, "{:?}", again.body);
    // And the phone never changed.
    assert_eq!(app.get_user(&stolen).await.body["phone"], "1234567890");
}

#[tokio::test]
async fn put_user_is_no_phone_registration_oracle() {
    let app = TestApp::mongo().await;
    app.signed_in("2025550100").await;
    let prober = app.signed_in("2025550101").await;
    // Without the password, a taken and a free phone answer the same.
    let taken = app.put_user(&prober, json!({"phone": "2025550100"})).await;
    let free = app.put_user(&prober, json!({"phone": "2025550199"})).await;
    assert_eq!(taken.status, 400);
    assert_eq!(taken.body, free.body);
    // With it, phone changes are budgeted: five per user per hour.
    for i in 0..5 {
        let a = app
            .put_user(
                &prober,
                json!({"phone": format!("20255502{i:02}"), "current_password": "securepassword123"}),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    let sixth = app
        .put_user(
            &prober,
            json!({"phone": "2025550100", "current_password": "securepassword123"}),
        )
        .await;
    assert_eq!(
        (sixth.status.as_u16(), sixth.code()),
        (429, "too_many_attempts")
    );
    let wait: u64 = sixth.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    app.clock.advance(3600);
    let again = login(&app.state, "2025550204", "securepassword123").await;
    let next_hour = app
        .put_user(
            &again,
            json!({"phone": "2025550300", "current_password": "securepassword123"}),
        )
        .await;
    assert_eq!(next_hour.status, 200, "{:?}", next_hour.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phone_changes_from_one_address_are_budgeted_across_users() {
    let app = TestApp::with(Backend::Mongo, |v| v.set("PHONE_CHANGE_IP_LIMIT", "4")).await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(app.signed_in(&format!("30255501{i:02}")).await);
    }
    // Every event carries the fixture's source address; all six try at once.
    let answers = join_all(users.iter().enumerate().map(|(i, l)| {
        app.put_user(
            l,
            json!({"phone": format!("30255502{i:02}"), "current_password": "securepassword123"}),
        )
    }))
    .await;
    let t = tally(&answers);
    assert_eq!((t.get(&200), t.get(&429)), (Some(&4), Some(&2)), "{t:?}");
}

#[tokio::test]
async fn a_lock_running_out_hands_out_no_fresh_guesses() {
    // The cap equal to the failure window: the setting that used to reset the count.
    let app = TestApp::with(Backend::Mongo, |v| {
        v.set("LOGIN_LOCKOUT_MAX_SECONDS", "900");
        v.set("LOGIN_FAILURE_WINDOW_SECONDS", "900");
    })
    .await;
    app.signed_in("1234567890").await;
    // Fail until the lock reaches its cap, waiting out each lock.
    let mut capped = false;
    for _ in 0..60 {
        let a = app.login("1234567890", "wrong-password").await;
        match a.status.as_u16() {
            401 => {}
            429 => {
                let wait: i64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
                if wait == 900 {
                    capped = true;
                    break;
                }
                app.clock.advance(wait);
            }
            other => panic!("{other}"),
        }
    }
    assert!(capped, "the lock never reached its cap");
    // Wait out the longest lock: one guess, then locked again at once (not five).
    app.clock.advance(900);
    assert_eq!(app.login("1234567890", "wrong-password").await.status, 401);
    let refused = app.login("1234567890", "wrong-password").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["retry-after"], "900");
}

#[tokio::test]
async fn a_short_idle_timeout_is_refreshed_by_use() {
    let app = TestApp::with(Backend::Mongo, |v| v.set("SESSION_IDLE_TTL_SECONDS", "30")).await;
    let l = app.signed_in("1234567890").await;
    for _ in 0..4 {
        app.clock.advance(20);
        let a = app.get_user(&l).await;
        assert_eq!(
            a.status, 200,
            "used every 20 s, a 30 s idle timeout never passes"
        );
    }
    app.clock.advance(31);
    assert_eq!(app.get_user(&l).await.status, 401, "idle for 31 s");
}

#[tokio::test]
async fn all_store_calls_of_a_request_share_one_deadline() {
    // A database that answers, but slowly: every reply is held back 400 ms. A login makes
    // several store calls in turn; each alone is well inside the per-call cap (4 s).
    let proxy = SlowProxy::start(Duration::from_millis(400)).await;
    let db = fresh_db();
    let instance = |budget_ms: u128| {
        let mut v = vars();
        v.set("DB_NAME", db.as_str());
        v.set("MONGO_URI", proxy.uri.as_str());
        v.set("REQUEST_BUDGET_MS", budget_ms.to_string());
        async move { edge::State::load(&v, true).await.unwrap() }
    };
    let patient = instance(30_000).await;
    let signup = with_body(event("signup"), &signup_body("1234567890"));
    assert_eq!(call(&patient, &signup).await.status, 201);
    let t = Instant::now();
    let a = login_status(&patient, "1234567890", "securepassword123").await;
    let login_time = t.elapsed();
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert!(login_time > Duration::from_millis(1200), "{login_time:?}");
    // The same login on an instance whose request budget is 60 % of what it needs: every
    // call fits the per-call cap, but together they pass the budget, so the answer is a 503
    // by the deadline.
    let budget = login_time.as_millis() * 6 / 10;
    let hurried = instance(budget).await;
    // Warm its connection pool first (whatever this answers).
    login_status(&hurried, "5550001234", "securepassword123").await;
    let t = Instant::now();
    let a = login_status(&hurried, "1234567890", "securepassword123").await;
    let took = t.elapsed();
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (503, "service_unavailable"),
        "login needs {login_time:?}, budget {budget} ms"
    );
    assert!(
        took.as_millis() < budget + 600,
        "took {took:?} with a {budget} ms budget"
    );
}
