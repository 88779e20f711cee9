//! Runs the cases through the shared handlers against MongoDB, in order, and records every
//! answer.

use super::*;

/// Runs [`cases`] through the shared handlers against MongoDB, in order.
pub(super) async fn full_flow() -> Flow {
    let (db, _clock) = mongo_state().await;
    // Verification stays off (the seed flow is unchanged); a test number lets the code routes
    // succeed without a sender.
    let sms = domain::config::Vars::from_pairs([(
        "SMS_TEST_NUMBERS",
        format!("{TEST_PHONE}:{TEST_CODE}"),
    )]);
    let verification =
        domain::verification::Verification::from_vars(&sms, adapters::sms_sender).unwrap();
    let db = db.with_verification(verification);
    let (strict, _clock) = mongo_state().await;
    let strict_vars = domain::config::Vars::from_pairs([
        ("REQUIRE_PHONE_VERIFICATION", "true".to_owned()),
        ("SMS_TEST_NUMBERS", format!("{STRICT_PHONE}:{TEST_CODE}")),
        ("SMS_PER_PHONE_PER_HOUR", "1".to_owned()),
    ]);
    let verification =
        domain::verification::Verification::from_vars(&strict_vars, adapters::sms_sender).unwrap();
    let strict = strict.with_verification(verification);
    let (change, _clock) = mongo_state().await;
    let change_vars = domain::config::Vars::from_pairs([
        ("REQUIRE_PHONE_VERIFICATION", "true".to_owned()),
        (
            "SMS_TEST_NUMBERS",
            format!("{CHANGER_PHONE}:{TEST_CODE},{CHANGE_TARGET}:{TEST_CODE}"),
        ),
    ]);
    let verification =
        domain::verification::Verification::from_vars(&change_vars, adapters::sms_sender).unwrap();
    let change = change.with_verification(verification);
    let (email, _clock) = mongo_state().await;
    let email_vars = domain::config::Vars::from_pairs([
        ("REQUIRE_EMAIL_VERIFICATION", "true".to_owned()),
        ("EMAIL_SENDER", "log".to_owned()),
        ("EMAIL_ALLOW_LOG_SENDER", "1".to_owned()),
        (
            "EMAIL_TEST_ADDRESSES",
            [MAIL_SIGNUP, MAIL_SOON, MAIL_CHANGER, MAIL_TARGET]
                .map(|a| format!("{a}:{TEST_CODE}"))
                .join(","),
        ),
    ]);
    let mail = domain::email::Mail::from_vars(&email_vars, domain::email::log_mailer).unwrap();
    let email = email.with_email(mail);
    let (mfa, mfa_clock) = mongo_state().await;
    let mfa = mfa.with_passkeys(Some(relying_party(1)));
    let refuser = crate::sms::Receiver::start(crate::sms::Answer::Json(
        r#"{"decision": "refuse", "message": "Invitation only."}"#,
    ))
    .await;
    let (hooked, _clock) = mongo_state().await;
    let hooked = hooked.with_hooks(
        domain::hooks::Hooks::from_vars(
            &domain::config::Vars::from_pairs([
                ("HOOK_PRE_SIGNUP_URL", refuser.url()),
                (
                    "HOOK_PRE_SIGNUP_SECRET",
                    format!("whsec_{}", crate::sms::SECRET_B64),
                ),
            ]),
            adapters::hook_caller,
        )
        .unwrap(),
    );
    let (pk, pk_clock) = mongo_state().await;
    let pk = pk.with_passkeys(Some(relying_party(1)));
    let mode = |m: &str| {
        let mut v = api_tests::vars();
        v.set("DB_NAME", fresh_db());
        v.set("REQUIRE_MFA", m);
        domain::config::Settings::from_vars(&v).unwrap()
    };
    let (mfa_off, _clock) = state_on(Backend::Mongo, |_| mode("off")).await;
    let (mfa_required, _clock) = state_on(Backend::Mongo, |_| mode("required")).await;
    let fed_setup = federation_flow::setup().await;
    let fedn = || Some(fed_setup.federation.clone());
    let (fed, _clock) = mongo_state().await;
    let fed = fed.with_federation(fedn());
    federation_flow::disabled_holder(&fed, &fed_setup.issuer).await;
    let (fed_no_browser, _clock) = mongo_state().await;
    let fed_no_browser = fed_no_browser.with_federation(Some(fed_setup.no_browser.clone()));
    let mfa_required = mfa_required.with_federation(fedn());
    let down = unreachable_db_state()
        .await
        .with_passkeys(Some(relying_party(1)))
        .with_federation(fedn());
    let refusing = refusing_inserts_state().await.with_federation(fedn());
    federation_flow::browser_seeds(&fed, &refusing, &fed_setup.issuer).await;
    let (broken, c) = broken_documents_state().await;
    let broken = broken
        .with_passkeys(Some(relying_party(1)))
        .with_federation(fedn());
    let uid = UserId::new();
    let nobody = Login {
        id: uid.to_hex(),
        token: down
            .tokens()
            .issue(EVENT_ISSUER, &uid, "some-session", down.clock.now() as u64)
            .unwrap(),
        session_token: "A".repeat(43),
    };
    let held = ObjectId::new();
    mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&refusing.settings.db_name)
        .collection::<mongodb::bson::Document>("User")
        .insert_one(
            doc! {"_id": held, "first_name": "A", "last_name": "B", "phone": "5550000403",
            "password": "x"},
        )
        .bypass_document_validation(true)
        .await
        .unwrap();
    let mut ctx = Ctx {
        a: None,
        b: None,
        refresh: None,
        nobody,
        c,
        plain: signed_in(&db, "5550000404").await,
        d: signed_in(&db, "5550000401").await,
        e: signed_in(&db, "5550000402").await,
        target: throwaway(&db).await,
        held: held.to_hex(),
        changer: None,
        mailer: None,
        mfa: None,
        enrolments: Vec::new(),
        challenge: None,
        other: None,
        mfa_now: 0,
        auth: std::cell::RefCell::new(Authenticator::new()),
        pk: None,
        ceremonies: Vec::new(),
        pk_id: None,
        pk_challenge: None,
        fed_tokens: fed_setup.tokens.clone(),
        fed: None,
        fed_plain: signed_in(&fed, "5550000477").await,
    };
    let mut f = Flow::default();
    for case in cases() {
        let state = match case.on {
            On::Db => &db,
            On::Down => &down,
            On::Refusing => &refusing,
            On::Broken => &broken,
            On::Strict => &strict,
            On::Change => &change,
            On::Email => &email,
            On::Mfa => &mfa,
            On::MfaOff => &mfa_off,
            On::MfaRequired => &mfa_required,
            On::Pk => &pk,
            On::Hooked => &hooked,
            On::Fed => &fed,
            On::FedNoBrowser => &fed_no_browser,
        };
        mfa_clock.advance(case.tick);
        pk_clock.advance(case.tick);
        ctx.mfa_now = mfa_clock.now();
        for _ in 0..case.times {
            let answer = f.send(state, case.what, (case.request)(&ctx)).await;
            match case.keep {
                Keep::Nothing => {}
                Keep::A => ctx.a = Some(Login::of(answer)),
                Keep::B => ctx.b = Some(Login::of(answer)),
                Keep::Changer => ctx.changer = Some(Login::of(answer)),
                Keep::Mailer => ctx.mailer = Some(Login::of(answer)),
                Keep::MfaUser => ctx.mfa = Some(Login::of(answer)),
                Keep::Other => ctx.other = Some(Login::of(answer)),
                Keep::Enrolment => ctx.enrolments.push((
                    answer.body["enrolment"].as_str().unwrap().to_owned(),
                    answer.body["secret"].as_str().unwrap().to_owned(),
                )),
                Keep::Raised => {
                    let token = answer.body["token"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: no token in {:?}", case.what, answer.body));
                    ctx.mfa.as_mut().unwrap().token = token.to_owned();
                }
                Keep::Challenge => {
                    ctx.challenge = answer.body["mfa_token"].as_str().map(str::to_owned);
                }
                Keep::Refresh => {
                    ctx.refresh = answer.body["refresh_token"].as_str().map(str::to_owned);
                }
                Keep::PkUser => ctx.pk = Some(Login::of(answer)),
                Keep::Ceremony => ctx.ceremonies.push((
                    answer.body["ceremony"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: {:?}", case.what, answer.body))
                        .to_owned(),
                    answer.body["options"].to_string(),
                )),
                Keep::PkEnrolled => {
                    ctx.pk_id = answer.body["factor"]["id"].as_str().map(str::to_owned);
                    ctx.pk.as_mut().unwrap().token =
                        answer.body["token"].as_str().unwrap().to_owned();
                }
                Keep::PkRaised => {
                    ctx.pk.as_mut().unwrap().token =
                        answer.body["token"].as_str().unwrap().to_owned();
                }
                Keep::PkChallenge => {
                    ctx.pk_challenge = answer.body["mfa_token"].as_str().map(str::to_owned);
                }
                Keep::Fed => {
                    let b = &answer.body;
                    let s = |k: &str| {
                        b[k].as_str()
                            .unwrap_or_else(|| panic!("{}: {b}", case.what))
                    };
                    ctx.fed = Some(Login {
                        id: b["user_id"]["$oid"].as_str().unwrap().to_owned(),
                        token: s("token").to_owned(),
                        session_token: s("session_token").to_owned(),
                    });
                }
            }
        }
    }
    f
}
