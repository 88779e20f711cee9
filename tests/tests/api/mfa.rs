//! Second factors end to end on SecantusDB: TOTP codes from an independent implementation
//! (pyotp), recovery codes, sign-in with a second factor, the step-up rule, assurance in the
//! tokens (checked by a second JWT library), a password reset that leaves the factor in
//! force, `REQUIRE_MFA`, the operator's reset, and the attacks: replayed and out-of-window
//! codes, forty concurrent guesses on two instances.

use std::collections::HashSet;

use api_tests::*;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::clock::Clock;
use futures::future::join_all;
use serde_json::{Value, json};

mod keys_and_resets;

const PASSWORD: &str = "securepassword123";

pub(crate) fn pyotp(secret: &str, at: i64) -> String {
    totp_code(secret, at)
}

pub(crate) fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `method path` as `login`, with `body` if any.
pub(crate) fn authed(method: &str, path: &str, login: &Login, body: Option<Value>) -> Value {
    let route = edge::routes::Endpoint::find(method, path).expect("a route");
    let mut ev = event_for(method, route.path());
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    if let Some(b) = body {
        ev = with_json_body(ev, &b);
    }
    with_auth(ev, &login.token, &login.session_token)
}

pub(crate) fn post(path: &str, body: Value) -> Value {
    with_json_body(event_for("POST", path), &body)
}

/// An account with a TOTP factor: its secret and recovery codes, and the session that
/// enrolled it (at AAL2 now, with the token the confirmation handed back).
pub(crate) struct Enrolled {
    pub(crate) secret: String,
    pub(crate) recovery_codes: Vec<String>,
    pub(crate) login: Login,
}

pub(crate) async fn enrol(app: &TestApp, login: &Login) -> Enrolled {
    let start = app.call(&authed("POST", "/mfa/totp", login, None)).await;
    assert_eq!(start.status, 200, "{:?}", start.body);
    let secret = start.body["secret"].as_str().unwrap().to_owned();
    let uri = start.body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")));
    let code = pyotp(&secret, app.clock.now());
    let done = app
        .call(&authed(
            "POST",
            "/mfa/totp/confirm",
            login,
            Some(json!({"enrolment": start.body["enrolment"], "code": code})),
        ))
        .await;
    assert_eq!(done.status, 201, "{:?}", done.body);
    assert_eq!(done.body["aal"], 2);
    let recovery_codes: Vec<String> = done.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        secret,
        recovery_codes,
        login: Login {
            token: done.body["token"].as_str().unwrap().to_owned(),
            ..login.clone()
        },
    }
}

/// A password login answering with a second-factor challenge: its `mfa_token`.
async fn challenge(app: &TestApp, phone: &str) -> String {
    let a = app.login(phone, PASSWORD).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["mfa_required"], true, "{:?}", a.body);
    assert!(
        a.body.get("token").is_none(),
        "no tokens before the second factor"
    );
    a.body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_factor(app: &TestApp, mfa_token: &str, proof: Value) -> Answer {
    let mut body = proof;
    body["mfa_token"] = json!(mfa_token);
    app.call(&post("/login/mfa", body)).await
}

/// An account on an SMS-verifying app (`verification::app`): signed up by phone, proven by
/// its code, signed in and enrolled in TOTP. Its phone, login and enrolment.
async fn proven_and_enrolled(app: &TestApp) -> (String, Login, Enrolled) {
    use crate::verification::{confirm, last_code, phone, signup};
    let p = phone();
    assert_eq!(signup(app, &p).await.status, 201);
    assert_eq!(confirm(app, &p, &last_code(&p).await).await.status, 200);
    let l = Login::of(&app.login(&p, PASSWORD).await);
    let e = enrol(app, &l).await;
    (p, l, e)
}

/// A second sign-in of an enrolled account, completed with the next step's code.
async fn signed_in_with_code(app: &TestApp, phone: &str, e: &Enrolled) -> Answer {
    next_step(app);
    let token = challenge(app, phone).await;
    let code = pyotp(&e.secret, app.clock.now());
    second_factor(app, &token, json!({"code": code})).await
}

/// POST /session/step-up with the current step's code; panics unless 200.
async fn step_up_with_code(app: &TestApp, session: &Login, e: &Enrolled) -> Answer {
    let code = pyotp(&e.secret, app.clock.now());
    let ev = authed(
        "POST",
        "/session/step-up",
        session,
        Some(json!({"code": code})),
    );
    let up = app.call(&ev).await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    up
}

/// Moves the clock to the next TOTP step (a step's code is spent once it is used).
fn next_step(app: &TestApp) {
    app.clock.advance(30);
}

#[tokio::test]
async fn an_authenticator_app_enrols_and_sign_in_then_asks_for_its_code() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550161").await;
    let e = enrol(&app, &l).await;
    assert_eq!(e.recovery_codes.len(), 10);
    assert_eq!(e.recovery_codes.iter().collect::<HashSet<_>>().len(), 10);
    assert!(e.recovery_codes.iter().all(|c| c.len() == 14));
    let listed = app.call(&authed("GET", "/mfa", &e.login, None)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["factors"][0]["kind"], "totp");
    assert_eq!(listed.body["recovery_codes_left"], 10);
    assert!(
        listed.body.to_string().find(&e.secret).is_none(),
        "the secret is shown once"
    );

    next_step(&app);
    let token = challenge(&app, "4025550161").await;
    let login = app.login("4025550161", PASSWORD).await;
    assert_eq!(login.body["methods"], json!(["totp", "recovery_code"]));
    let wrong = second_factor(&app, &token, json!({"code": "000000"})).await;
    assert_eq!(wrong.code(), "invalid_code", "{:?}", wrong.body);
    let code = pyotp(&e.secret, app.clock.now());
    let ok = second_factor(&app, &token, json!({"code": code})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let c = claims_of(ok.body["token"].as_str().unwrap());
    assert_eq!(c["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(
        (c["aal"].clone(), c["scope"].clone()),
        (json!(2), json!("aal1 aal2"))
    );
    assert_eq!(c["auth_time"], app.clock.now());
    // The challenge completes one sign-in.
    next_step(&app);
    let again = second_factor(
        &app,
        &token,
        json!({"code": pyotp(&e.secret, app.clock.now())}),
    );
    assert_eq!(again.await.status, 401);
    let session = Login::of(&ok);
    assert_eq!(app.get_user(&session).await.status, 200);
}

#[tokio::test]
async fn a_totp_code_works_once_and_only_within_one_step_either_side() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550162").await;
    let e = enrol(&app, &l).await;
    let now = app.clock.now();
    let token = challenge(&app, "4025550162").await;
    // The code that confirmed the enrolment is spent, and so is every earlier step.
    let cases = [
        (pyotp(&e.secret, now), "the enrolment's own code"),
        (pyotp(&e.secret, now - 30), "the step before it"),
        (pyotp(&e.secret, now + 60), "two steps ahead"),
    ];
    for (code, what) in cases {
        let a = second_factor(&app, &token, json!({"code": code})).await;
        assert_eq!(a.code(), "invalid_code", "{what}: {:?}", a.body);
    }
    // One step ahead (a fast phone clock) is in the window; used, it is spent.
    let ahead = pyotp(&e.secret, now + 30);
    let ok = second_factor(&app, &token, json!({"code": ahead})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let token = challenge(&app, "4025550162").await;
    let replay = second_factor(&app, &token, json!({"code": ahead})).await;
    assert_eq!(
        replay.code(),
        "invalid_code",
        "a code is refused for the rest of its window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_wrong_totp_codes_on_two_instances_get_at_most_five_checks() {
    let a = TestApp::mongo().await;
    let b = a.second_instance().await;
    let l = a.signed_in("4025550163").await;
    let e = enrol(&a, &l).await;
    next_step(&a);
    let token = challenge(&a, "4025550163").await;
    let answers = join_all((0..40).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let code = format!("{:06}", 100_000 + i);
        second_factor(app, &token, json!({"code": code}))
    }))
    .await;
    let checked = answers
        .iter()
        .filter(|x| x.code() == "invalid_code")
        .count();
    let locked = answers.iter().filter(|x| x.status == 429).count();
    assert!(checked <= 5, "{checked} codes were compared");
    assert_eq!(checked + locked, 40);
    assert!(
        answers
            .iter()
            .filter(|x| x.status == 429)
            .all(|x| x.headers.contains_key("retry-after"))
    );
    // Locked means locked: even the right code waits for the lock to run out.
    let right = second_factor(&a, &token, json!({"code": pyotp(&e.secret, a.clock.now())})).await;
    assert_eq!(right.status, 429);
}

#[tokio::test]
async fn recovery_codes_work_once_each_and_are_replaced_only_after_a_fresh_step_up() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550164").await;
    let e = enrol(&app, &l).await;
    let token = challenge(&app, "4025550164").await;
    // Typed loosely: upper case, no dashes.
    let typed = e.recovery_codes[3].replace('-', "").to_uppercase();
    let ok = second_factor(&app, &token, json!({"recovery_code": typed})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(claims_of(ok.body["token"].as_str().unwrap())["aal"], 2);
    let session = Login::of(&ok);
    let token = challenge(&app, "4025550164").await;
    let reused = second_factor(&app, &token, json!({"recovery_code": e.recovery_codes[3]})).await;
    assert_eq!(reused.code(), "invalid_code");
    let listed = app.call(&authed("GET", "/mfa", &session, None)).await;
    assert_eq!(listed.body["recovery_codes_left"], 9);

    app.clock.advance(11 * 60);
    let stale = app
        .call(&authed("POST", "/mfa/recovery-codes", &session, None))
        .await;
    assert_eq!(
        (stale.status.as_u16(), stale.code()),
        (403, "step_up_required")
    );
    let up = step_up_with_code(&app, &session, &e).await;
    let raised = Login {
        token: up.body["token"].as_str().unwrap().to_owned(),
        ..session
    };
    let fresh = app
        .call(&authed("POST", "/mfa/recovery-codes", &raised, None))
        .await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    let new_codes = fresh.body["recovery_codes"].as_array().unwrap();
    assert_eq!(new_codes.len(), 10);
    let token = challenge(&app, "4025550164").await;
    let old = second_factor(&app, &token, json!({"recovery_code": e.recovery_codes[5]})).await;
    assert_eq!(old.code(), "invalid_code", "the old set stopped working");
    let new = second_factor(&app, &token, json!({"recovery_code": new_codes[0]})).await;
    assert_eq!(new.status, 200);
}

#[tokio::test]
async fn sensitive_changes_need_a_fresh_step_up_and_a_stale_session_is_refused() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550165").await;
    let e = enrol(&app, &l).await;
    app.clock.advance(11 * 60);
    let stale = e.login.clone();
    let change = json!({"password": "a-brand-new-passphrase", "current_password": PASSWORD});
    let cases = [
        (
            app.put_user(&stale, change.clone()).await,
            "password change",
        ),
        (
            app.put_user(
                &stale,
                json!({"phone": "4025550199", "current_password": PASSWORD}),
            )
            .await,
            "phone change",
        ),
        (
            app.call(&authed("DELETE", "/mfa/factors/totp", &stale, None))
                .await,
            "factor removal",
        ),
        (
            app.call(&authed(
                "DELETE",
                "/user",
                &stale,
                Some(json!({"current_password": PASSWORD})),
            ))
            .await,
            "account deletion",
        ),
    ];
    for (a, what) in cases {
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (403, "step_up_required"),
            "{what}: {:?}",
            a.body
        );
    }
    // A name change is not sensitive.
    assert_eq!(
        app.put_user(&stale, json!({"first_name": "Jo"}))
            .await
            .status,
        200
    );
    let wrong = app
        .call(&authed(
            "POST",
            "/session/step-up",
            &stale,
            Some(json!({"code": "123456"})),
        ))
        .await;
    assert_eq!(wrong.code(), "invalid_code");
    let up = step_up_with_code(&app, &stale, &e).await;
    let c = claims_of(up.body["token"].as_str().unwrap());
    assert_eq!(
        (c["aal"].clone(), c["auth_time"].clone()),
        (json!(2), json!(app.clock.now()))
    );
    assert_eq!(
        app.put_user(&stale, change).await.status,
        200,
        "the session stepped up"
    );
}

#[tokio::test]
async fn a_refresh_keeps_the_sessions_assurance_and_never_raises_it() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550166").await;
    let plain = app.login("4025550166", PASSWORD).await;
    let refresh = |token: &str| post("/token/refresh", json!({"refresh_token": token}));
    let r = app
        .call(&refresh(plain.body["refresh_token"].as_str().unwrap()))
        .await;
    let c = claims_of(r.body["token"].as_str().unwrap());
    assert_eq!(
        (c["aal"].clone(), c["amr"].clone()),
        (json!(1), json!(["pwd"]))
    );
    assert_eq!(c["scope"], "aal1");
    let e = enrol(&app, &l).await;
    let mfa = signed_in_with_code(&app, "4025550166", &e).await;
    let signed_in_at = app.clock.now();
    app.clock.advance(120);
    let r = app
        .call(&refresh(mfa.body["refresh_token"].as_str().unwrap()))
        .await;
    let c = claims_of(r.body["token"].as_str().unwrap());
    assert_eq!(
        (c["aal"].clone(), c["amr"].clone()),
        (json!(2), json!(["pwd", "otp", "mfa"]))
    );
    assert_eq!(
        c["auth_time"], signed_in_at,
        "the sign-in's time, not the refresh's"
    );
    // The single-factor session from before the enrolment stays single-factor.
    let r = app
        .call(&refresh(r.body["refresh_token"].as_str().unwrap()))
        .await;
    assert_eq!(r.status, 200);
    let old = app.login("4025550166", PASSWORD).await;
    assert_eq!(old.body["mfa_required"], true);
}

#[tokio::test]
async fn mfa_tokens_carry_amr_aal_auth_time_and_the_aal2_scope_a_second_library_verifies() {
    use jwt_simple::prelude::{RS256PublicKey, RSAPublicKeyLike, VerificationOptions};
    let app = TestApp::with(Backend::Mongo, |v| {
        v.set("JWT_ALGORITHM", "RS256");
        v.set("JWT_PRIVATE_KEY", rsa_pem("a"));
    })
    .await;
    let l = app.signed_in("4025550167").await;
    let e = enrol(&app, &l).await;
    let ok = signed_in_with_code(&app, "4025550167", &e).await;
    let jwt = ok.body["token"].as_str().unwrap();
    let jwks = app.state.tokens().jwks();
    let key = RS256PublicKey::from_jwk(&jwks["keys"][0].to_string()).unwrap();
    #[derive(serde::Deserialize)]
    struct Assurance {
        amr: Vec<String>,
        aal: u8,
        auth_time: i64,
        scope: String,
    }
    let checked = key
        .verify_token::<Value>(jwt, Some(VerificationOptions::default()))
        .unwrap();
    let a: Assurance = serde_json::from_value(checked.custom).unwrap();
    assert_eq!(a.amr, ["pwd", "otp", "mfa"]);
    assert_eq!((a.aal, a.auth_time), (2, app.clock.now()));
    // API Gateway's JWT authorizer reads `scope` as space-separated scopes.
    assert!(a.scope.split(' ').any(|s| s == "aal2"));
}

#[tokio::test]
async fn a_password_reset_by_sms_leaves_the_second_factor_required() {
    use crate::verification::{app as sms_app, last_code};
    let app = sms_app(&[]).await;
    let (p, _, e) = proven_and_enrolled(&app).await;
    let start = crate::verification::ev("/recover/start", json!({"phone": p}));
    assert_eq!(app.call(&start).await.status, 202);
    let code = last_code(&p).await;
    let done = app
        .call(&crate::verification::ev(
            "/recover/confirm",
            json!({"phone": p, "code": code, "new_password": "a-brand-new-passphrase"}),
        ))
        .await;
    assert_eq!(done.status, 204, "{:?}", done.body);
    let a = app.login(&p, "a-brand-new-passphrase").await;
    assert_eq!(
        a.body["mfa_required"], true,
        "the reset bypassed nothing: {:?}",
        a.body
    );
    assert!(a.body.get("token").is_none());
    next_step(&app);
    let token = a.body["mfa_token"].as_str().unwrap();
    let ok = second_factor(
        &app,
        token,
        json!({"code": pyotp(&e.secret, app.clock.now())}),
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn with_mfa_required_a_user_without_a_factor_may_only_enrol_one() {
    let app = TestApp::with(Backend::Mongo, |v| v.set("REQUIRE_MFA", "required")).await;
    let l = app.signed_in("4025550168").await;
    let names = app.put_user(&l, json!({"first_name": "Jo"})).await;
    assert_eq!(
        (names.status.as_u16(), names.code()),
        (403, "mfa_enrolment_required")
    );
    assert_eq!(
        app.get_user(&l).await.status,
        200,
        "the profile stays readable"
    );
    let listed = app.call(&authed("GET", "/mfa", &l, None)).await;
    assert_eq!(
        (listed.body["mfa"].clone(), listed.body["aal"].clone()),
        (json!("required"), json!(1))
    );
    let e = enrol(&app, &l).await;
    assert_eq!(
        app.put_user(&e.login, json!({"first_name": "Jo"}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn with_mfa_off_nothing_enrols_and_sign_in_never_asks() {
    let app = TestApp::with(Backend::Mongo, |v| v.set("REQUIRE_MFA", "off")).await;
    let l = app.signed_in("4025550169").await;
    let start = app.call(&authed("POST", "/mfa/totp", &l, None)).await;
    assert_eq!((start.status.as_u16(), start.code()), (403, "mfa_disabled"));
    assert!(app.login("4025550169", PASSWORD).await.body["token"].is_string());
}

#[tokio::test]
async fn removing_the_last_factor_takes_the_recovery_codes_and_other_sessions_with_it() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550170").await;
    let e = enrol(&app, &l).await;
    let other = signed_in_with_code(&app, "4025550170", &e).await;
    let other = Login::of(&other);
    let gone = app
        .call(&authed("DELETE", "/mfa/factors/totp", &e.login, None))
        .await;
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    let listed = app.call(&authed("GET", "/mfa", &e.login, None)).await;
    assert_eq!(listed.body["factors"], json!([]));
    assert_eq!(listed.body["recovery_codes_left"], 0);
    assert_eq!(
        app.get_user(&other).await.status,
        401,
        "other sessions ended"
    );
    let missing = app
        .call(&authed("DELETE", "/mfa/factors/totp", &e.login, None))
        .await;
    assert_eq!(missing.code(), "factor_not_found");
    assert!(app.login("4025550170", PASSWORD).await.body["token"].is_string());
}
