//! The passkey routes through the handlers: register, sign in, step up, rename, list and remove;
//! no relying party configured; the per-user limit and the sign-in start cap across instances.

use super::*;

/// A passkey route's event as `l` (or without a session), with `body` if any, sent to `path`
/// (the route's own, or with its `{id}` filled in).
fn pk_route(
    method: &str,
    route: &str,
    path: &str,
    l: Option<&Login>,
    body: Option<Value>,
) -> Value {
    let mut ev = event_for(method, route);
    ev["rawPath"] = path.into();
    ev["requestContext"]["http"]["path"] = path.into();
    let ev = match l {
        Some(l) => with_bearer(ev, l),
        None => without_auth(ev),
    };
    match body {
        Some(b) => with_json_body(ev, &b),
        None => ev,
    }
}

fn post(route: &str, l: Option<&Login>, body: Option<Value>) -> Value {
    pk_route("POST", route, route, l, body)
}

/// The credential JSON of an answer, as a browser's `toJSON()` sends it.
fn credential(answer: &str) -> Value {
    serde_json::from_str(answer).unwrap()
}

#[tokio::test]
async fn the_passkey_routes_register_sign_in_step_up_rename_list_and_remove() {
    let app = TestApp::mongo().await.with_passkeys(relying_party(10));
    let l = app.signed_in("4025550190").await;
    let mut auth = Authenticator::new();

    // Register: options for create(), then the answer, once.
    let s = app
        .call(&post("/passkeys/register/start", Some(&l), None))
        .await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert_eq!(
        s.body["options"]["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    let options = s.body["options"].to_string();
    let finish = json!({"ceremony": s.body["ceremony"], "credential": credential(&auth.create(&options, ORIGIN)), "label": " Laptop "});
    let r = app
        .call(&post(
            "/passkeys/register/finish",
            Some(&l),
            Some(finish.clone()),
        ))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        (
            r.body["factor"]["kind"].as_str(),
            r.body["factor"]["label"].as_str(),
            r.body["aal"].as_i64()
        ),
        (Some("passkey"), Some("Laptop"), Some(2))
    );
    assert_eq!(r.body["recovery_codes"].as_array().map(Vec::len), Some(10));
    let id = r.body["factor"]["id"].as_str().unwrap().to_owned();
    let replay = app
        .call(&post("/passkeys/register/finish", Some(&l), Some(finish)))
        .await;
    assert_eq!(
        (replay.status.as_u16(), replay.code()),
        (400, "passkey_refused")
    );

    // Sign in with no identifier, no body at all.
    let s = app.call(&post("/passkeys/login/start", None, None)).await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    let answer = auth.get(&s.body["options"].to_string(), ORIGIN);
    let body = json!({"ceremony": s.body["ceremony"], "credential": credential(&answer)});
    let g = app
        .call(&post("/passkeys/login/finish", None, Some(body.clone())))
        .await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    assert_eq!(g.body["user_id"]["$oid"], l.id.as_str());
    assert_eq!(claims_of(g.body["token"].as_str().unwrap())["aal"], 2);
    let again = app
        .call(&post("/passkeys/login/finish", None, Some(body)))
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (400, "passkey_refused")
    );

    // A password sign-in now waits for a second factor: the passkey completes it.
    let challenge = app.login("4025550190", "securepassword123").await;
    let token = challenge.body["mfa_token"].as_str().unwrap().to_owned();
    let s = app
        .call(&post(
            "/passkeys/login/start",
            None,
            Some(json!({"mfa_token": token})),
        ))
        .await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert_eq!(
        s.body["options"]["publicKey"]["allowCredentials"][0]["id"],
        id.as_str()
    );
    let answer = auth.get(&s.body["options"].to_string(), ORIGIN);
    let body = json!({"ceremony": s.body["ceremony"], "credential": credential(&answer), "mfa_token": token});
    let g = app
        .call(&post("/passkeys/login/finish", None, Some(body)))
        .await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    let second = Login::of(&g);

    // Eleven minutes on, the session is stale: removal needs a step-up, which the passkey does.
    app.clock.advance(660);
    let path = format!("/passkeys/{id}");
    let remove = |l: &Login| pk_route("DELETE", "/passkeys/{id}", &path, Some(l), None);
    let r = app.call(&remove(&second)).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "step_up_required"));
    let s = app
        .call(&post("/passkeys/step-up/start", Some(&second), None))
        .await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    let answer = auth.get(&s.body["options"].to_string(), ORIGIN);
    let body = json!({"ceremony": s.body["ceremony"], "credential": credential(&answer)});
    let raised = app
        .call(&post("/passkeys/step-up/finish", Some(&second), Some(body)))
        .await;
    assert_eq!(
        (raised.status.as_u16(), raised.body["aal"].as_i64()),
        (200, Some(2)),
        "{:?}",
        raised.body
    );
    let second = Login {
        token: raised.body["token"].as_str().unwrap().to_owned(),
        ..second
    };

    // Rename, list, remove.
    let r = app
        .call(&pk_route(
            "PATCH",
            "/passkeys/{id}",
            &path,
            Some(&second),
            Some(json!({"label": "Phone"})),
        ))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["label"].as_str()),
        (200, Some("Phone")),
        "{:?}",
        r.body
    );
    let list = app
        .call(&pk_route(
            "GET",
            "/passkeys",
            "/passkeys",
            Some(&second),
            None,
        ))
        .await;
    assert_eq!(list.status, 200);
    let keys = list.body["passkeys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        1,
        "renaming replaced the passkey, it did not add one"
    );
    assert_eq!(
        (
            keys[0]["id"].as_str(),
            keys[0]["label"].as_str(),
            keys[0]["kind"].as_str()
        ),
        (Some(id.as_str()), Some("Phone"), Some("passkey"))
    );
    assert!(keys[0]["last_used_at"].is_i64(), "{keys:?}");
    let r = app.call(&remove(&second)).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = app.call(&remove(&second)).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "factor_not_found"));
    // The removed passkey signs in no more; the password alone does again.
    let s = app.call(&post("/passkeys/login/start", None, None)).await;
    let answer = auth.get(&s.body["options"].to_string(), ORIGIN);
    let g = app
        .call(&post(
            "/passkeys/login/finish",
            None,
            Some(json!({"ceremony": s.body["ceremony"], "credential": credential(&answer)})),
        ))
        .await;
    assert_eq!((g.status.as_u16(), g.code()), (400, "passkey_refused"));
    assert_eq!(
        app.login("4025550190", "securepassword123").await.status,
        200
    );
}

#[tokio::test]
async fn without_a_relying_party_every_passkey_route_answers_passkeys_disabled() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550191").await;
    for e in Endpoint::ALL
        .iter()
        .filter(|e| e.function() == Function::Passkeys)
    {
        let path = e.path().replace("{id}", "AAAA");
        let r = app
            .call(&pk_route(e.method(), e.path(), &path, Some(&l), None))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "passkeys_disabled"),
            "{} {}",
            e.method(),
            e.path()
        );
    }
}

/// The per-account limit is checked where the passkey is written, not only when a ceremony
/// starts: six registrations started while the account had none, finished at once on two
/// instances, store exactly the limit's two (the rest answer `PasskeyLimit`), and exactly one
/// of them hands out recovery codes, the set the account keeps.
#[tokio::test]
async fn racing_registrations_on_two_instances_store_no_more_passkeys_than_the_limit() {
    let one = TestApp::mongo().await;
    let two = one.second_instance().await;
    let pk = passkeys(2);
    let l = one.signed_in("4025550191").await;
    let caller = caller_of(&one, &l).await;
    let client = gateway_client();
    let mut answers = Vec::new();
    for _ in 0..6 {
        let cx = one.state.ctx(&client);
        let started = passkey::start_registration(&cx, &pk, &caller)
            .await
            .unwrap();
        let mut auth = Authenticator::new();
        answers.push((started.ceremony, auth.create(&started.options, ORIGIN)));
    }
    let results = join_all(answers.iter().enumerate().map(|(i, (ceremony, answer))| {
        let (app, pk, caller, client) =
            (if i % 2 == 0 { &one } else { &two }, &pk, &caller, &client);
        async move {
            let cx = app.state.ctx(client);
            passkey::finish_registration(&cx, pk, caller, ceremony, answer, None).await
        }
    }))
    .await;
    let stored: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::PasskeyLimit)))
        .count();
    assert_eq!((stored.len(), refused), (2, 4), "{results:?}");
    let user = one
        .state
        .store
        .find_user(&caller.user_id)
        .await
        .unwrap()
        .unwrap();
    let held = user
        .credentials
        .iter()
        .filter(|c| c.record.kind == domain::credential::CredentialKind::Passkey)
        .count();
    assert_eq!(held, 2);
    let with_codes: Vec<_> = stored
        .iter()
        .filter_map(|e| e.recovery_codes.clone())
        .collect();
    assert_eq!(
        with_codes.len(),
        1,
        "one set of recovery codes is handed out"
    );
    // The codes handed out are the ones kept: one of them completes a sign-in.
    let a = one.login("4025550191", "securepassword123").await;
    let done = one
        .call(&with_json_body(
            event_for("POST", "/login/mfa"),
            &json!({"mfa_token": a.body["mfa_token"], "recovery_code": with_codes[0][0]}),
        ))
        .await;
    assert_eq!(done.status, 200, "{:?}", done.body);
}

/// Passwordless sign-in starts store a ceremony each, so one source address may start only
/// so many a minute: 80 starts from one address, at once on two instances, get exactly 30
/// ceremonies (the rest 429-style `TooManyAttempts`), and another address is not charged.
#[tokio::test]
async fn passkey_sign_in_starts_from_one_address_are_capped_across_instances_and_others_are_not_charged()
 {
    let one = TestApp::mongo().await;
    let two = one.second_instance().await;
    let pk = passkeys(10);
    let from = |ip: &str| Client {
        source_ip: ip.to_owned(),
        ..gateway_client()
    };
    let (busy, other) = (from("198.51.100.7"), from("203.0.113.9"));
    let results = join_all((0..80).map(|i| {
        let (app, pk, client) = (if i % 2 == 0 { &one } else { &two }, &pk, &busy);
        async move {
            let cx = app.state.ctx(client);
            passkey::start_login(&cx, pk, None).await
        }
    }))
    .await;
    let started = results.iter().filter(|r| r.is_ok()).count();
    let capped = results
        .iter()
        .filter(|r| matches!(r, Err(Error::TooManyAttempts { .. })))
        .count();
    assert_eq!(
        (started, capped),
        (30, 50),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let cx = two.state.ctx(&other);
    assert!(passkey::start_login(&cx, &pk, None).await.is_ok());
}
