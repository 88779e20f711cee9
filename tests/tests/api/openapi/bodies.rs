//! Request bodies: each operation's body is the schema file the server compiles for the route.

use super::*;

/// The schema file (name in `edge/schemas/`) the document gives as the request body of an
/// operation, after checking it is referenced, not copied, and is the file the server embeds.
pub(super) fn body_schema_file(op: &Value, route: &str) -> Option<String> {
    let body = op.get("requestBody")?;
    let content = body["content"].as_object().unwrap();
    // A provider posting the browser back (OpenID's `form_post`) sends the one form body; its
    // handler reads the fields it knows and there is no JSON schema to compile.
    if route == "POST /federation/{provider}/callback" {
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/x-www-form-urlencoded"]
        );
        return None;
    }
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["application/json"],
        "{route}: the handlers read only application/json"
    );
    let reference = body["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{route}: the body schema must $ref a file in edge/schemas/"));
    let file = reference
        .strip_prefix("./edge/schemas/")
        .unwrap_or_else(|| panic!("{route}: {reference} is not in ./edge/schemas/"));
    let on_disk = std::fs::read_to_string(root().join(reference))
        .unwrap_or_else(|e| panic!("{route}: {reference}: {e}"));
    let (_, _, compiled) = SOURCES
        .iter()
        .find(|(_, name, _)| *name == file)
        .unwrap_or_else(|| panic!("{route}: {file} is not a schema the server compiles"));
    assert_eq!(
        on_disk, *compiled,
        "{route}: {reference} differs from what the server embeds"
    );
    Some(file.to_owned())
}

pub(super) fn compiled_schema(file: &str) -> Validator {
    let (_, _, src) = SOURCES.iter().find(|(_, name, _)| *name == file).unwrap();
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&serde_json::from_str(src).unwrap())
        .unwrap()
}

/// A body valid for schema `file`, for a caller with id `id`.
pub(super) fn sample(file: &str, id: &str, fresh_phone: &str) -> Value {
    match file {
        "signup.json" => signup_body(fresh_phone),
        "login.json" => json!({"phone": "1234567890", "password": "securepassword123"}),
        "logout.json" => json!({"scope": "current"}),
        "update_user.json" => json!({"_id": {"$oid": id}, "last_name": "Smith"}),
        "delete_user.json" => json!({"current_password": "securepassword123"}),
        "refresh.json" => {
            json!({"refresh_token": format!("{}.{}", "A".repeat(22), "A".repeat(43))})
        }
        "phone_start.json" | "recover_start.json" => json!({"phone": "+12025550123"}),
        "phone_confirm.json" => json!({"phone": "+12025550123", "code": "123456"}),
        "email_start.json" => json!({"email": "ann@example.com"}),
        "email_confirm.json" => json!({"email": "ann@example.com", "code": "123456"}),
        "recover_confirm.json" => {
            json!({"phone": "+12025550123", "code": "123456", "new_password": "a-new-passphrase-1"})
        }
        "login_mfa.json" => json!({"mfa_token": "A".repeat(22), "code": "123456"}),
        "step_up.json" => json!({"recovery_code": "abcd-efgh-jkmn"}),
        "totp_confirm.json" => json!({"enrolment": "A".repeat(22), "code": "123 456"}),
        "passkey_register.json" | "passkey_login.json" | "passkey_step_up.json" => pk_answer(),
        "passkey_login_start.json" => json!({}),
        "passkey_rename.json" => json!({"label": "Laptop"}),
        "app_metadata.json" => json!({"roles": ["editor"]}),
        "federation_token.json" => {
            json!({"id_token": "aaa.bbb.ccc", "nonce": federation_flow::NONCE})
        }
        "identity_link.json" => {
            json!({"provider": "google", "id_token": "aaa.bbb.ccc", "nonce": federation_flow::NONCE})
        }
        "federation_exchange.json" => {
            json!({"code": "A".repeat(22), "code_verifier": "v".repeat(43)})
        }
        other => panic!("no sample body for {other}: add one"),
    }
}

/// A body the route accepts, from its documented schema, for user 1234567890 of `state`.
pub(super) async fn sample_for(
    doc: &Value,
    method: &str,
    path: &str,
    state: &State,
) -> Option<Value> {
    let op = &doc["paths"][path][method.to_lowercase()];
    let file = body_schema_file(op, &format!("{method} {path}"))?;
    if file == "login_mfa.json" {
        // The body is the credential: a live challenge of an account with a factor.
        return Some(json!({"mfa_token": live_challenge(state).await, "code": "000000"}));
    }
    if file == "refresh.json" {
        // The body is the credential: a live refresh token from a login.
        let a = login_status(state, "1234567890", "securepassword123").await;
        return Some(json!({"refresh_token": a.body["refresh_token"]}));
    }
    let id = login(state, "1234567890", "securepassword123").await.id;
    Some(sample(
        &file,
        &id,
        &format!("55512{:05}", unique() % 100_000),
    ))
}

/// A sign-in waiting for its second factor: a fresh account enrols TOTP and logs in.
pub(super) async fn live_challenge(state: &State) -> String {
    let phone = format!("55513{:05}", unique() % 100_000);
    let l = signed_in(state, &phone).await;
    let start = call(state, &with_bearer(event_for("POST", "/mfa/totp"), &l)).await;
    let secret = start.body["secret"].as_str().unwrap();
    let code = totp_code(secret, state.clock.now());
    let body = json!({"enrolment": start.body["enrolment"], "code": code});
    let done = call(
        state,
        &with_json_body(
            with_bearer(event_for("POST", "/mfa/totp/confirm"), &l),
            &body,
        ),
    )
    .await;
    assert_eq!(done.status, 201, "{:?}", done.body);
    let a = login_status(state, &phone, "securepassword123").await;
    a.body["mfa_token"].as_str().unwrap().to_owned()
}

pub(super) fn unique() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    u32::from_le_bytes(b)
}

#[tokio::test]
pub(super) async fn request_bodies_are_the_schemas_the_server_compiles_for_each_route() {
    let doc = doc();
    let (state, _) = mongo_state().await;
    let state = state.with_passkeys(Some(relying_party(10)));
    signed_in(&state, "1234567890").await;
    let ops = operations(&doc);
    let mut referenced = BTreeSet::new();
    for ((method, path), op) in &ops {
        let route = format!("{method} {path}");
        let file = body_schema_file(op, &route);
        let state = &state;
        let fresh = move || async move {
            if path.starts_with("/admin") {
                let (id, phone) = throwaway(state).await;
                return admin_event_for(method, path, &id, &phone);
            }
            let l = login(state, "1234567890", "securepassword123").await;
            with_bearer(event_for(method, path), &l)
        };
        if route == "POST /federation/{provider}/callback" {
            // A form the provider posts, not JSON: its cases are the flow's (federation_flow).
            continue;
        }
        let Some(file) = file else {
            // No documented body: the route must ignore one, even garbage.
            let ev = with_header(
                with_raw_body(fresh().await, "{not json"),
                "content-type",
                Some("application/json"),
            );
            let a = call(state, &ev).await;
            // Ignored: whatever the route answers, it is not about the body.
            assert!(
                !matches!(a.status.as_u16(), 400 | 413 | 415),
                "{route} documents no body but answered one with {} {:?}",
                a.status,
                a.body
            );
            continue;
        };
        referenced.insert(file.clone());
        // `required` says whether the route refuses an empty body.
        let a = call(state, &without_body(fresh().await)).await;
        assert_eq!(
            op["requestBody"]["required"] == true,
            a.status.is_client_error(),
            "{route}: requestBody.required vs an empty body answered {} {:?}",
            a.status,
            a.body
        );
        // The documented schema accepts exactly the sample bodies the route accepts.
        let schema = compiled_schema(&file);
        for (_, sample_file, _) in SOURCES {
            let id = login(state, "1234567890", "securepassword123").await.id;
            let body = sample(sample_file, &id, &format!("55500{:05}", unique() % 100_000));
            assert!(
                compiled_schema(sample_file).is_valid(&body),
                "the sample for {sample_file} is not valid for it"
            );
            let a = call(state, &with_json_body(fresh().await, &body)).await;
            restore_if_deleted(state, method, path, &a).await;
            let route_accepts = !(a.status == 400 && a.code() == "validation_failed");
            assert_eq!(
                route_accepts,
                schema.is_valid(&body),
                "{route} (documented body {file}) with a {sample_file} body {body}: {} {:?}",
                a.status,
                a.body
            );
        }
    }
    let compiled: BTreeSet<String> = SOURCES.iter().map(|(_, f, _)| f.to_string()).collect();
    assert_eq!(
        referenced, compiled,
        "every compiled schema is some route's documented body"
    );
}
