//! Passkeys: the relying party (webauthn-rs behind `domain::passkey::PasskeyVerifier`) and
//! the ceremonies of `service::passkey` on SecantusDB, driven by a software authenticator
//! (`api_tests::passkey`): registration, sign-in with no identifier, a passkey as the second
//! factor of a password sign-in, and each way an answer can be wrong: another challenge, a
//! replayed ceremony, another origin, another key, user verification dropped or its flag
//! forged, a removed passkey, the per-account limit.

use api_tests::{passkey::*, *};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::{
    passkey::{PasskeyError, PasskeyUser, PasskeyVerifier, Passkeys},
    service::{self, Caller, Client, Error, LoginOutcome, mfa, passkey},
    types::UserId,
};
use edge::routes::{Endpoint, Function};
use futures::future::join_all;
use relying_party::WebauthnVerifier;
use serde_json::{Value, json};

mod routes;

fn rp(origins: &[&str]) -> WebauthnVerifier {
    WebauthnVerifier::new(&rp_settings(origins, 10)).unwrap()
}

fn passkeys(max: usize) -> Passkeys {
    relying_party(max)
}

fn user() -> PasskeyUser {
    PasskeyUser {
        id: UserId::new(),
        name: "ann@example.com".into(),
        display_name: "Ann".into(),
    }
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

// ---- the relying party alone --------------------------------------------------------------

#[test]
fn the_relying_party_registers_a_discoverable_passkey_and_signs_in_with_no_username() {
    let rp = rp(&[ORIGIN]);
    let who = user();
    let start = rp.start_registration(&who, &[]).unwrap();
    let options: Value = serde_json::from_str(&start.options).unwrap();
    let sel = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(sel["residentKey"], "required");
    assert_eq!(sel["userVerification"], "required");
    assert_eq!(options["publicKey"]["attestation"], "none");
    let mut auth = Authenticator::new();
    let key = rp
        .finish_registration(&auth.create(&start.options, ORIGIN), &start.state)
        .unwrap();
    assert_eq!(key.aaguid.len(), 36);
    assert!(
        !format!("{key:?}").contains(&key.stored),
        "Debug prints no key"
    );
    let c = rp.start_authentication(&[]).unwrap();
    let answer = auth.get(&c.options, ORIGIN);
    assert_eq!(
        rp.identify(&answer).unwrap(),
        (Some(who.id), key.credential_id.clone())
    );
    assert!(
        rp.finish_authentication(&answer, &c.state, &key.stored)
            .unwrap()
            .user_verified
    );
    // As a second factor for a known account: its passkeys allowed by name.
    let c = rp
        .start_authentication(std::slice::from_ref(&key.stored))
        .unwrap();
    let answer = auth.get(&c.options, ORIGIN);
    rp.finish_authentication(&answer, &c.state, &key.stored)
        .unwrap();
}

#[test]
fn the_relying_party_refuses_another_challenge_origin_or_key_and_a_forged_uv_flag() {
    let rp = rp(&[ORIGIN]);
    let mut auth = Authenticator::new();
    let start = rp.start_registration(&user(), &[]).unwrap();
    let key = rp
        .finish_registration(&auth.create(&start.options, ORIGIN), &start.state)
        .unwrap();
    let mut other_auth = Authenticator::new();
    let start = rp.start_registration(&user(), &[]).unwrap();
    let other = rp
        .finish_registration(&other_auth.create(&start.options, ORIGIN), &start.state)
        .unwrap();
    let first = rp.start_authentication(&[]).unwrap();
    let second = rp.start_authentication(&[]).unwrap();
    let answer = auth.get(&first.options, ORIGIN);
    // A subdomain the authenticator accepts for the RP id, but not an allowed origin here.
    let c = rp.start_authentication(&[]).unwrap();
    let phished = auth.get(&c.options, "https://login.example.com");
    let f = rp.start_authentication(&[]).unwrap();
    let forged = with_uv_flag_cleared(&auth.get(&f.options, ORIGIN));
    let cases = [
        (
            rp.finish_authentication(&answer, &second.state, &key.stored),
            "another challenge",
        ),
        (
            rp.finish_authentication(&answer, &first.state, &other.stored),
            "another key's record",
        ),
        (
            rp.finish_authentication(&phished, &c.state, &key.stored),
            "another origin",
        ),
        (
            rp.finish_authentication(&forged, &f.state, &key.stored),
            "the UV flag cleared",
        ),
    ];
    for (r, what) in cases {
        assert!(matches!(r, Err(PasskeyError::Refused(_))), "{what}: {r:?}");
    }
    let start = rp.start_registration(&user(), &[]).unwrap();
    let unverified = create_unverified(&start.options, ORIGIN);
    let r = rp.finish_registration(&unverified, &start.state);
    assert!(
        matches!(r, Err(PasskeyError::Refused(_))),
        "UV dropped: {r:?}"
    );
    let start = rp.start_registration(&user(), &[]).unwrap();
    let elsewhere = Authenticator::new().create(&start.options, "https://login.example.com");
    let r = rp.finish_registration(&elsewhere, &start.state);
    assert!(
        matches!(r, Err(PasskeyError::Refused(_))),
        "registered elsewhere: {r:?}"
    );
    for junk in ["", "{}", "null", "[1,2]", "{\"id\": 5}"] {
        assert!(rp.identify(junk).is_err(), "{junk}");
        assert!(
            rp.finish_authentication(junk, &c.state, "{}").is_err(),
            "{junk}"
        );
        assert!(rp.finish_registration(junk, b"{}").is_err(), "{junk}");
    }
}

// ---- the ceremonies ------------------------------------------------------------------------

/// A request's client as the events' API Gateway sets it: the issuer the tokens carry.
fn gateway_client() -> Client {
    Client {
        api_url: Some(EVENT_ISSUER.to_owned()),
        ..Client::default()
    }
}

/// The caller of a login's tokens on `app`.
async fn caller_of(app: &TestApp, l: &Login) -> Caller {
    let client = gateway_client();
    let cx = app.state.ctx(&client);
    service::session_of(&cx, &l.token, &l.session_token)
        .await
        .unwrap()
        .unwrap()
}

/// Registers a passkey of `auth` for the account of `l`.
async fn register(
    app: &TestApp,
    pk: &Passkeys,
    l: &Login,
    auth: &mut Authenticator,
) -> mfa::Enrolled {
    let caller = caller_of(app, l).await;
    let client = gateway_client();
    let cx = app.state.ctx(&client);
    let started = passkey::start_registration(&cx, pk, &caller).await.unwrap();
    let answer = auth.create(&started.options, ORIGIN);
    passkey::finish_registration(
        &cx,
        pk,
        &caller,
        &started.ceremony,
        &answer,
        Some("Phone".into()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_registered_passkey_signs_in_with_no_identifier_at_aal2_once_per_ceremony() {
    let app = TestApp::mongo().await;
    let pk = passkeys(10);
    let l = app.signed_in("4025550181").await;
    let mut auth = Authenticator::new();
    let e = register(&app, &pk, &l, &mut auth).await;
    assert_eq!(e.factor.label, "Phone");
    assert_eq!(
        e.recovery_codes.as_ref().map(Vec::len),
        Some(10),
        "the first factor brings codes"
    );
    assert_eq!(
        e.caller.assurance.aal(),
        2,
        "the registering session proved a device"
    );

    let client = gateway_client();
    let cx = app.state.ctx(&client);
    let started = passkey::start_login(&cx, &pk, None).await.unwrap();
    let answer = auth.get(&started.options, ORIGIN);
    let grant = passkey::finish_login(&cx, &pk, &started.ceremony, &answer, None)
        .await
        .unwrap();
    let c = claims_of(&grant.token);
    assert_eq!(
        (c["aal"].clone(), c["scope"].clone()),
        (2.into(), "aal1 aal2".into())
    );
    let amr = c["amr"].as_array().unwrap();
    assert!(
        amr.contains(&"mfa".into()) && (amr.contains(&"hwk".into()) || amr.contains(&"swk".into())),
        "{amr:?}"
    );
    assert_eq!(grant.user_id.to_hex(), l.id);
    // The same answer again: the ceremony was taken.
    let again = passkey::finish_login(&cx, &pk, &started.ceremony, &answer, None).await;
    assert!(matches!(again, Err(Error::PasskeyRefused)), "{again:?}");
    // A password sign-in of the account now asks for a second factor, a passkey among them.
    let a = app.login("4025550181", "securepassword123").await;
    assert_eq!(
        a.body["methods"],
        serde_json::json!(["passkey", "recovery_code"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_racing_finishes_of_one_assertion_on_two_instances_open_one_session() {
    let a = TestApp::mongo().await;
    let b = a.second_instance().await;
    let pk = passkeys(10);
    let l = a.signed_in("4025550182").await;
    let mut auth = Authenticator::new();
    register(&a, &pk, &l, &mut auth).await;
    let client = gateway_client();
    let cx = a.state.ctx(&client);
    let started = passkey::start_login(&cx, &pk, None).await.unwrap();
    let answer = auth.get(&started.options, ORIGIN);
    let results = join_all((0..10).map(|i| {
        let (app, pk, answer, ceremony) = (
            if i % 2 == 0 { &a } else { &b },
            &pk,
            &answer,
            &started.ceremony,
        );
        async move {
            let client = gateway_client();
            let cx = app.state.ctx(&client);
            passkey::finish_login(&cx, pk, ceremony, answer, None)
                .await
                .is_ok()
        }
    }))
    .await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
}

#[tokio::test]
async fn a_passkey_completes_a_password_sign_in_as_its_second_factor() {
    let app = TestApp::mongo().await;
    let pk = passkeys(10);
    let l = app.signed_in("4025550183").await;
    let mut auth = Authenticator::new();
    register(&app, &pk, &l, &mut auth).await;
    let a = app.login("4025550183", "securepassword123").await;
    let token = domain::store::CeremonyId::parse(a.body["mfa_token"].as_str().unwrap()).unwrap();
    let client = gateway_client();
    let cx = app.state.ctx(&client);
    let started = passkey::start_login(&cx, &pk, Some(&token)).await.unwrap();
    let options: Value = serde_json::from_str(&started.options).unwrap();
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let answer = auth.get(&started.options, ORIGIN);
    let grant = passkey::finish_login(&cx, &pk, &started.ceremony, &answer, Some(&token))
        .await
        .unwrap();
    let c = claims_of(&grant.token);
    assert_eq!(c["amr"][0], "pwd");
    assert_eq!(c["aal"], 2);
    // The challenge is spent: a second passkey ceremony cannot complete it again.
    let started = passkey::start_login(&cx, &pk, Some(&token)).await;
    assert!(matches!(started, Err(Error::Unauthorized)), "{started:?}");
    // Another account's passkey does not complete this account's challenge.
    let other = app.signed_in("4025550184").await;
    let mut other_auth = Authenticator::new();
    register(&app, &pk, &other, &mut other_auth).await;
    let a = app.login("4025550183", "securepassword123").await;
    let token = domain::store::CeremonyId::parse(a.body["mfa_token"].as_str().unwrap()).unwrap();
    let started = passkey::start_login(&cx, &pk, None).await.unwrap();
    let foreign = other_auth.get(&started.options, ORIGIN);
    let r = passkey::finish_login(&cx, &pk, &started.ceremony, &foreign, Some(&token)).await;
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test]
async fn a_removed_passkey_no_longer_signs_in_and_the_limit_holds() {
    let app = TestApp::mongo().await;
    let pk = passkeys(1);
    let l = app.signed_in("4025550185").await;
    let mut auth = Authenticator::new();
    let e = register(&app, &pk, &l, &mut auth).await;
    let client = gateway_client();
    let cx = app.state.ctx(&client);
    let more = passkey::start_registration(&cx, &pk, &e.caller).await;
    assert!(matches!(more, Err(Error::PasskeyLimit)), "{more:?}");
    mfa::remove_factor(&cx, &e.caller, &e.factor.id)
        .await
        .unwrap();
    let started = passkey::start_login(&cx, &pk, None).await.unwrap();
    let answer = auth.get(&started.options, ORIGIN);
    let r = passkey::finish_login(&cx, &pk, &started.ceremony, &answer, None).await;
    assert!(matches!(r, Err(Error::PasskeyRefused)), "{r:?}");
    assert!(
        matches!(
            service::login(
                &cx,
                domain::identity::Identifier::Phone(
                    domain::types::Phone::parse("4025550185").unwrap()
                ),
                domain::types::Password::unchecked("securepassword123".into()),
                None
            )
            .await,
            Ok(LoginOutcome::Granted(_))
        ),
        "the password alone again"
    );
}

#[tokio::test]
async fn a_passkey_steps_a_stale_session_up_and_only_its_own_account_s() {
    let app = TestApp::mongo().await;
    let pk = passkeys(10);
    let l = app.signed_in("4025550186").await;
    let mut auth = Authenticator::new();
    register(&app, &pk, &l, &mut auth).await;
    app.clock.advance(11 * 60);
    let client = gateway_client();
    let cx = app.state.ctx(&client);
    let stale = caller_of(&app, &l).await;
    let user = cx.store.find_user(&stale.user_id).await.unwrap().unwrap();
    assert!(matches!(
        mfa::require_step_up(&cx, &stale, &user),
        Err(Error::StepUpRequired)
    ));
    let started = passkey::start_step_up(&cx, &pk, &stale).await.unwrap();
    let answer = auth.get(&started.options, ORIGIN);
    let raised = passkey::finish_step_up(&cx, &pk, &stale, &started.ceremony, &answer)
        .await
        .unwrap();
    assert!(mfa::require_step_up(&cx, &raised, &user).is_ok());
    assert!(
        raised
            .assurance
            .amr
            .iter()
            .any(|m| m == "hwk" || m == "swk")
    );
    // Once per ceremony; and another account's session cannot use this account's ceremony.
    let again = passkey::finish_step_up(&cx, &pk, &stale, &started.ceremony, &answer).await;
    assert!(matches!(again, Err(Error::PasskeyRefused)), "{again:?}");
    let other = app.signed_in("4025550187").await;
    let other = caller_of(&app, &other).await;
    let started = passkey::start_step_up(&cx, &pk, &stale).await.unwrap();
    let answer = auth.get(&started.options, ORIGIN);
    let r = passkey::finish_step_up(&cx, &pk, &other, &started.ceremony, &answer).await;
    assert!(matches!(r, Err(Error::PasskeyRefused)), "{r:?}");
    assert!(matches!(
        passkey::start_step_up(&cx, &pk, &other).await,
        Err(Error::FactorNotFound)
    ));
}
