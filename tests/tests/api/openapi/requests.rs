//! One request of the flow (`Case`) and the event builders the cases use.

use super::*;

/// One request of the flow: what it is, the state it runs on, the event, how many times it
/// is sent and which login its answer becomes.
pub(super) struct Case {
    pub(super) what: &'static str,
    pub(super) on: On,
    pub(super) request: fn(&Ctx) -> Value,
    pub(super) times: usize,
    pub(super) keep: Keep,
    /// Seconds the [`On::Mfa`] clock moves before the case.
    pub(super) tick: i64,
}

/// A case sent once on the shared database.
pub(super) fn case(what: &'static str, request: fn(&Ctx) -> Value) -> Case {
    Case {
        what,
        on: On::Db,
        request,
        times: 1,
        keep: Keep::Nothing,
        tick: 0,
    }
}

impl Case {
    pub(super) fn on(self, on: On) -> Self {
        Self { on, ..self }
    }
    pub(super) fn times(self, times: usize) -> Self {
        Self { times, ..self }
    }
    pub(super) fn keep(self, keep: Keep) -> Self {
        Self { keep, ..self }
    }
    pub(super) fn tick(self, tick: i64) -> Self {
        Self { tick, ..self }
    }
}

pub(super) fn signup_ev() -> Value {
    event_for("POST", "/signup")
}
pub(super) fn login_ev() -> Value {
    event_for("POST", "/login")
}
pub(super) fn logout_ev() -> Value {
    event_for("POST", "/logout")
}
pub(super) fn get_user_ev() -> Value {
    event_for("GET", "/user")
}
pub(super) fn delete_ev() -> Value {
    event_for("DELETE", "/user")
}
/// DELETE /user as `l` with `current_password`.
pub(super) fn delete_as(l: &Login, current_password: &str) -> Value {
    with_json_body(
        with_bearer(delete_ev(), l),
        &json!({ "current_password": current_password }),
    )
}
/// An admin route as API Gateway hands it on with an IAM identity, aimed at the target user.
pub(super) fn admin(c: &Ctx, method: &str, path: &str) -> Value {
    admin_event_for(method, path, &c.target.0, &c.target.1)
}
pub(super) fn refresh_ev() -> Value {
    event_for("POST", "/token/refresh")
}
/// POST `path` of `body` as JSON, under a request id of its own (a repeated request id is a
/// retry, which sends no second SMS).
pub(super) fn code_route(path: &str, body: Value) -> Value {
    let mut ev = with_json_body(event_for("POST", path), &body);
    ev["requestContext"]["requestId"] = json!(format!("req-{}", unique()));
    ev
}
/// The flow's SMS test number and its fixed code.
pub(super) const TEST_PHONE: &str = "+15555550100";
pub(super) const TEST_CODE: &str = "123456";
/// The test number of the flow's state with verification required.
pub(super) const STRICT_PHONE: &str = "+15555550101";
/// Test numbers of the [`On::Change`] cases: the changer's own, and the one it moves to.
pub(super) const CHANGER_PHONE: &str = "+15555550102";
pub(super) const CHANGE_TARGET: &str = "+15555550103";
/// Test addresses of the [`On::Email`] cases (fixed code [`TEST_CODE`]): a signup, one that
/// resends too soon, an email changer, and the address it moves to.
pub(super) const MAIL_SIGNUP: &str = "signup@app.test";
pub(super) const MAIL_SOON: &str = "soon@app.test";
pub(super) const MAIL_CHANGER: &str = "changer@app.test";
pub(super) const MAIL_TARGET: &str = "target@app.test";
/// An address the canonical form refuses though the schema admits it.
pub(super) const MAIL_BAD: &str = "ann@example.123";
pub(super) fn signup_by_email(email: &str) -> Value {
    json!({"first_name": "Ann", "last_name": "Lee", "password": PASSWORD, "email": email})
}
pub(super) fn email_login(email: &str) -> Value {
    with_json_body(login_ev(), &json!({"email": email, "password": PASSWORD}))
}
/// POST /token/refresh of `token`.
pub(super) fn refresh_with(token: &str) -> Value {
    with_json_body(refresh_ev(), &json!({"refresh_token": token}))
}
/// A well-formed refresh token for the session of `l`'s JWT, with a secret nobody issued.
pub(super) fn forged_refresh(l: &Login) -> String {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&l.token)
        .unwrap()
        .claims;
    format!("{}.{}", claims["sid"].as_str().unwrap(), "A".repeat(43))
}
/// POST /signup of `body` as JSON.
pub(super) fn signup_of(body: &Value) -> Value {
    with_json_body(signup_ev(), body)
}
/// POST /login of these credentials as JSON.
pub(super) fn login_as(phone: &str, password: &str) -> Value {
    with_json_body(login_ev(), &json!({"phone": phone, "password": password}))
}
/// POST /logout as `l`, with `body` as JSON if given.
pub(super) fn logout_as(l: &Login, body: Option<Value>) -> Value {
    let ev = with_bearer(logout_ev(), l);
    match body {
        Some(b) => with_json_body(ev, &b),
        None => ev,
    }
}
/// GET /user as `l`.
pub(super) fn profile_as(l: &Login) -> Value {
    with_bearer(get_user_ev(), l)
}
pub(super) const MFA_PHONE: &str = "5550000701";
pub(super) fn mfa_route(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    let ev = with_bearer(event_for(method, path), c.mfa());
    match body {
        Some(b) => with_json_body(ev, &b),
        None => ev,
    }
}
pub(super) fn confirm_body(c: &Ctx, i: usize, code: &str) -> Value {
    json!({"enrolment": c.enrolments[i].0, "code": code})
}
pub(super) fn second_factor(c: &Ctx, code: &str) -> Value {
    with_json_body(
        event_for("POST", "/login/mfa"),
        &json!({"mfa_token": c.challenge(), "code": code}),
    )
}
pub(super) fn step_up(c: &Ctx, code: &str) -> Value {
    mfa_route(c, "POST", "/session/step-up", Some(json!({"code": code})))
}
pub(super) fn as_nobody(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    let ev = with_bearer(event_for(method, path), &c.nobody);
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
pub(super) fn as_broken(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    let ev = with_bearer(event_for(method, path), &c.c);
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
pub(super) const PK_PHONE: &str = "5550000801";
/// PUT /admin/users/{id}/app-metadata of `body` (as JSON, if any), IAM-signed.
pub(super) fn app_metadata(id: &str, body: Option<Value>) -> Value {
    let ev = admin_event_for("PUT", "/admin/users/{id}/app-metadata", id, "");
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
/// A passkey route (METHOD, documented path, `{id}` filled with `id`) as `l`, or with no
/// session, with `body` as JSON if given.
pub(super) fn pk_event(
    method: &str,
    path: &str,
    id: &str,
    l: Option<&Login>,
    body: Option<Value>,
) -> Value {
    let mut ev = event_for(method, path);
    let raw = path.replace("{id}", id);
    ev["rawPath"] = Value::String(raw.clone());
    ev["requestContext"]["http"]["path"] = Value::String(raw);
    let ev = match l {
        Some(l) => with_bearer(ev, l),
        None => without_auth(ev),
    };
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
/// A passkey route as the passkey user, on its passkey.
pub(super) fn pk_route(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    pk_event(
        method,
        path,
        c.pk_id.as_deref().unwrap_or("AAAA"),
        Some(c.pk()),
        body,
    )
}
/// A passkey route as the [`On::Mfa`] user (who has no passkey).
pub(super) fn pk_as_mfa(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    pk_event(method, path, "AAAA", Some(c.mfa()), body)
}
/// A passkey route with no session.
pub(super) fn pk_open(path: &str, body: Option<Value>) -> Value {
    pk_event("POST", path, "", None, body)
}
/// A body for a passkey finish route that its schema admits (an answer no ceremony expects).
pub(super) fn pk_answer() -> Value {
    json!({"ceremony": "A".repeat(22), "credential": {"id": "AAAA", "type": "public-key", "response": {}}})
}
pub(super) const BROKEN_PK_CEREMONY: &str = "UFBQUFBQUFBQUFBQUFBQUA";
pub(super) const SEED_PHONE: &str = "1234567890";
pub(super) const PASSWORD: &str = "securepassword123";
pub(super) const CT: &str = "content-type";
pub(super) fn wrong_current(l: &Login) -> Value {
    update_event(
        l,
        json!({"password": "a-new-password-1", "current_password": "not-the-password"}),
    )
}
