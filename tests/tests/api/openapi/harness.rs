//! The flow's harness: events without a body or IAM context, the states a case runs on
//! (MongoDB, an unreachable database, one refusing inserts, one holding unreadable documents)
//! and the context the cases read (logins, codes, ceremonies).

use super::*;

pub(super) fn without_body(mut ev: Value) -> Value {
    ev.as_object_mut().unwrap().remove("body");
    ev
}

/// A body over the 16 KiB limit.
pub(super) fn huge(field: &str) -> Value {
    json!({ field: "x".repeat(20_000) })
}

/// The event for an admin route (METHOD, documented path) aimed at user `id`, and for the
/// phone search at `phone`; it carries an IAM identity as API Gateway's authorizer sets it.
pub(super) fn admin_event_for(method: &str, path: &str, id: &str, phone: &str) -> Value {
    let mut ev = event_for(method, path);
    let raw = path.replace("{id}", id);
    ev["rawPath"] = Value::String(raw.clone());
    ev["requestContext"]["http"]["path"] = Value::String(raw);
    if path == "/admin/users" {
        ev["rawQueryString"] = Value::String(format!("phone={}", phone.replace('+', "%2B")));
        ev["queryStringParameters"] = json!({ "phone": phone });
    }
    ev
}

/// The same request as an unsigned one would arrive: no IAM identity (nor JWT authorizer
/// claims) in its context.
pub(super) fn without_iam(mut ev: Value) -> Value {
    ev["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    ev
}

/// A user of its own for an admin call to act on: (id, phone).
pub(super) async fn throwaway(state: &State) -> (String, String) {
    let phone = format!("+1202{:07}", unique() % 10_000_000);
    let a = call(
        state,
        &with_json_body(event_for("POST", "/signup"), &signup_body(&phone)),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    (a.body["_id"]["$oid"].as_str().unwrap().to_owned(), phone)
}

/// The flows act as user 1234567890; a DELETE /user that succeeded brings them back.
pub(super) async fn restore_if_deleted(state: &State, method: &str, path: &str, a: &Answer) {
    if method == "DELETE" && path == "/user" && a.status == 204 {
        signed_in(state, "1234567890").await;
    }
}

/// One request of a flow and what the handlers answered.
#[derive(Debug)]
pub(super) struct Seen {
    pub(super) what: &'static str,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) answer: Answer,
}

#[derive(Default)]
pub(super) struct Flow {
    pub(super) seen: Vec<Seen>,
}

impl Flow {
    /// Routes `ev` through the shared router and records the answer under the event's route.
    pub(super) async fn send(&mut self, state: &State, what: &'static str, ev: Value) -> &Answer {
        let method = ev["requestContext"]["http"]["method"]
            .as_str()
            .unwrap()
            .to_owned();
        let raw = ev["rawPath"].as_str().unwrap();
        // Recorded under the documented path: `/admin/users/{id}`, not the id it was sent to.
        let path =
            Endpoint::find(&method, raw).map_or_else(|_| raw.to_owned(), |e| e.path().to_owned());
        let answer = call(state, &ev).await;
        self.seen.push(Seen {
            what,
            method,
            path,
            answer,
        });
        &self.seen.last().unwrap().answer
    }

    pub(super) fn summary(&self) -> String {
        self.seen
            .iter()
            .map(|s| {
                format!(
                    "  {} {} -> {} {} ({})\n",
                    s.method,
                    s.path,
                    s.answer.status.as_u16(),
                    s.answer.code(),
                    s.what
                )
            })
            .collect()
    }
}

/// A state whose MongoDB cannot be reached: nothing listens on its port, and server selection
/// gives up quickly, so every store call fails as unavailable.
pub(super) async fn unreachable_db_state() -> State {
    let opts = MongoOptions {
        server_selection_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..MongoOptions::default()
    };
    let uri = format!("mongodb://127.0.0.1:{}/?directConnection=true", free_port());
    let client = MongoStore::client(&uri, &opts).await.unwrap();
    let db = fresh_db();
    let store = MongoStore::new(&client, &db, "User", &opts);
    State::new(
        settings(&db),
        Arc::new(store),
        StoreKind::Mongo,
        Arc::new(ManualClock::new()) as Arc<dyn Clock>,
    )
    .unwrap()
}

/// A state on a fresh database whose `User` and login-attempt collections refuse every
/// insert (a collection validator no document satisfies): a database error that is not
/// unavailability.
pub(super) async fn refusing_inserts_state() -> State {
    let db = fresh_db();
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    for collection in ["User", "User_login_attempts"] {
        client
            .database(&db)
            .create_collection(collection)
            .validator(doc! {"$jsonSchema": {"required": ["a_field_no_document_has"]}})
            .await
            .unwrap();
    }
    State::new(
        settings(&db),
        Arc::new(mongo_store(&db).await),
        StoreKind::Mongo,
        Arc::new(ManualClock::new()) as Arc<dyn Clock>,
    )
    .unwrap()
}

/// The id of the unreadable challenge in [`broken_documents_state`].
pub(super) const BROKEN_CHALLENGE: &str = "QkJCQkJCQkJCQkJCQkJCQg";

/// A state on a fresh database holding user 3333333333 (logged in: the returned tokens), whose
/// user document is of another shape (read leniently: login still works) and whose session
/// the store cannot read.
pub(super) async fn broken_documents_state() -> (State, Login) {
    let (broken, _) = mongo_state().await;
    let c = signed_in(&broken, "3333333333").await;
    let db = mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&broken.settings.db_name);
    db.collection::<mongodb::bson::Document>("User")
        .update_many(doc! {}, doc! {"$set": {"first_name": 42}})
        .await
        .unwrap();
    db.collection::<mongodb::bson::Document>("User_sessions")
        .update_many(doc! {}, doc! {"$set": {"expires_at": "not a date"}})
        .await
        .unwrap();
    // A second-factor challenge whose state is not what the flow wrote.
    db.collection::<mongodb::bson::Document>("User_ceremonies")
        .insert_one(doc! {"_id": BROKEN_CHALLENGE, "kind": "second_factor",
        "user": ObjectId::new(), "state": "not bytes", "expires": i64::MAX})
        .await
        .unwrap();
    // And provider sign-in states of the same kind.
    for id in [
        federation_flow::BROKEN_STATE_GET,
        federation_flow::BROKEN_STATE_POST,
    ] {
        db.collection::<mongodb::bson::Document>("User_ceremonies")
            .insert_one(doc! {"_id": id, "kind": "federated_login",
            "state": "not bytes", "expires": i64::MAX})
            .await
            .unwrap();
    }
    // And a passkey sign-in ceremony of the same kind.
    db.collection::<mongodb::bson::Document>("User_ceremonies")
        .insert_one(doc! {"_id": BROKEN_PK_CEREMONY, "kind": "passkey_login",
        "state": "not bytes", "expires": i64::MAX})
        .await
        .unwrap();
    (broken, c)
}

/// The state a case of the flow runs on.
#[derive(Debug, Clone, Copy)]
pub(super) enum On {
    /// A fresh MongoDB database, shared by the cases in order.
    Db,
    /// A database that cannot be reached (503).
    Down,
    /// A database that refuses every insert (500).
    Refusing,
    /// Documents the store cannot read (500).
    Broken,
    /// Phone verification required, a test number, one SMS per phone and hour.
    Strict,
    /// Phone verification required, two test numbers and the default SMS limits: a phone
    /// change that loses its number to another account.
    Change,
    /// Email verification required, test addresses: proof, unproven logins, an email change
    /// that loses its address to another account.
    Email,
    /// Second factors: a database and a clock of their own (steps and step-ups age).
    Mfa,
    /// `REQUIRE_MFA=off`.
    MfaOff,
    /// `REQUIRE_MFA=required`.
    MfaRequired,
    /// Passkeys on (at most one per account), with a clock of its own.
    Pk,
    /// A `pre_signup` hook that refuses every signup.
    Hooked,
    /// Identity providers on: a local OpenID provider (its tokens minted before the flow).
    Fed,
    /// The same providers, with no browser sign-in set up.
    FedNoBrowser,
}

/// Which login of the flow a case's 200 answer becomes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Keep {
    Nothing,
    A,
    B,
    /// The answer's `refresh_token` becomes the flow's refresh token.
    Refresh,
    /// The login of the [`On::Change`] cases.
    Changer,
    /// The login of the [`On::Email`] cases.
    Mailer,
    /// The login of the [`On::Mfa`] cases.
    MfaUser,
    /// A TOTP enrolment's id and secret.
    Enrolment,
    /// An answer's `token` replaces the [`On::Mfa`] login's (its session rose to AAL2).
    Raised,
    /// A sign-in's `mfa_token`.
    Challenge,
    /// The login of the [`On::MfaOff`] or [`On::MfaRequired`] cases.
    Other,
    /// The login of the [`On::Pk`] cases.
    PkUser,
    /// A passkey ceremony's id and options.
    Ceremony,
    /// A passkey registration: its id, and its `token` replaces the passkey user's.
    PkEnrolled,
    /// An answer's `token` replaces the passkey user's (a step-up).
    PkRaised,
    /// A sign-in's `mfa_token`, for a passkey second factor.
    PkChallenge,
    /// The account a provider sign-in made (its answer is a 201).
    Fed,
}

/// The logins cases use: `a` and `b` come from the flow's own logins, `nobody` holds a valid
/// JWT for the unreachable database (so the session lookup is what fails), `c` is the user of
/// the broken documents.
pub(super) struct Ctx {
    pub(super) a: Option<Login>,
    pub(super) b: Option<Login>,
    pub(super) refresh: Option<String>,
    pub(super) nobody: Login,
    pub(super) c: Login,
    /// A user made before the flow, signed in for the passkeys-off cases.
    pub(super) plain: Login,
    /// Users made before the flow for the DELETE /user cases: `d` fails, `e` is deleted.
    pub(super) d: Login,
    pub(super) e: Login,
    /// A user for the admin cases to act on: (id, phone).
    pub(super) target: (String, String),
    /// A user document the refusing database already holds (its updates are refused).
    pub(super) held: String,
    pub(super) changer: Option<Login>,
    pub(super) mailer: Option<Login>,
    pub(super) mfa: Option<Login>,
    /// (enrolment id, base32 secret) of each TOTP enrolment started.
    pub(super) enrolments: Vec<(String, String)>,
    pub(super) challenge: Option<String>,
    pub(super) other: Option<Login>,
    /// The [`On::Mfa`] clock's time as the case is made (for TOTP codes).
    pub(super) mfa_now: i64,
    /// The passkey cases' authenticator (it counts its signatures).
    pub(super) auth: std::cell::RefCell<Authenticator>,
    pub(super) pk: Option<Login>,
    /// (ceremony id, options JSON) of each passkey ceremony started.
    pub(super) ceremonies: Vec<(String, String)>,
    pub(super) pk_id: Option<String>,
    pub(super) pk_challenge: Option<String>,
    /// The provider's tokens, by name (see `federation_flow::setup`).
    pub(super) fed_tokens: std::collections::HashMap<&'static str, String>,
    /// The account a provider sign-in made.
    pub(super) fed: Option<Login>,
    /// A password account on the federation database, to link and unlink with.
    pub(super) fed_plain: Login,
}

impl Ctx {
    pub(super) fn fed_token(&self, name: &str) -> String {
        self.fed_tokens
            .get(name)
            .unwrap_or_else(|| panic!("no token {name} minted"))
            .clone()
    }
    pub(super) fn fed(&self) -> &Login {
        self.fed
            .as_ref()
            .expect("a case uses `fed` before the sign-in that keeps it")
    }
    pub(super) fn a(&self) -> &Login {
        self.a
            .as_ref()
            .expect("a case uses `a` before the login that keeps it")
    }
    pub(super) fn b(&self) -> &Login {
        self.b
            .as_ref()
            .expect("a case uses `b` before the login that keeps it")
    }
    pub(super) fn mailer(&self) -> &Login {
        self.mailer
            .as_ref()
            .expect("a case uses `mailer` before the login that keeps it")
    }
    pub(super) fn changer(&self) -> &Login {
        self.changer
            .as_ref()
            .expect("a case uses `changer` before the login that keeps it")
    }
    pub(super) fn mfa(&self) -> &Login {
        self.mfa
            .as_ref()
            .expect("a case uses `mfa` before the login that keeps it")
    }
    pub(super) fn other(&self) -> &Login {
        self.other
            .as_ref()
            .expect("a case uses `other` before the login that keeps it")
    }
    pub(super) fn challenge(&self) -> &str {
        self.challenge
            .as_deref()
            .expect("a case uses the challenge before the login that keeps it")
    }
    /// The TOTP code of enrolment `i`'s secret now.
    pub(super) fn code(&self, i: usize) -> String {
        totp_code(&self.enrolments[i].1, self.mfa_now)
    }
    pub(super) fn pk(&self) -> &Login {
        self.pk
            .as_ref()
            .expect("a case uses `pk` before the login that keeps it")
    }
    pub(super) fn pk_id(&self) -> &str {
        self.pk_id
            .as_deref()
            .expect("a case uses the passkey before its registration")
    }
    /// The registration answer to ceremony `i`, from the cases' authenticator.
    pub(super) fn created(&self, i: usize) -> Value {
        let (id, options) = &self.ceremonies[i];
        let answer = self.auth.borrow_mut().create(options, ORIGIN);
        json!({"ceremony": id, "credential": serde_json::from_str::<Value>(&answer).unwrap()})
    }
    /// The assertion for ceremony `i`.
    pub(super) fn asserted(&self, i: usize) -> Value {
        let (id, options) = &self.ceremonies[i];
        let answer = self.auth.borrow_mut().get(options, ORIGIN);
        json!({"ceremony": id, "credential": serde_json::from_str::<Value>(&answer).unwrap()})
    }
    pub(super) fn refresh(&self) -> &str {
        self.refresh
            .as_deref()
            .expect("a case uses the refresh token before the answer that keeps it")
    }
}
