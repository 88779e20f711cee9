//! Problem codes: they are exactly `ApiError`'s, every documented (route, status, code) is
//! produced, and every response of the full flow matches its documented schema and headers.

use super::*;

/// One value of every `ApiError` variant.
pub(super) fn every_api_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::Validation(vec![]),
        ApiError::MalformedJson,
        ApiError::UnsupportedMediaType,
        ApiError::PayloadTooLarge(16 * 1024),
        ApiError::Unauthorized,
        ApiError::InvalidCredentials,
        ApiError::Forbidden,
        ApiError::CurrentPasswordIncorrect,
        ApiError::PhoneTaken,
        ApiError::NotFound,
        ApiError::MethodNotAllowed,
        ApiError::TooManyAttempts {
            retry_after_secs: 7,
        },
        ApiError::Unavailable,
        ApiError::Internal,
        ApiError::WeakPassword(vec![]),
        ApiError::AccountDisabled,
        ApiError::UserNotFound,
        ApiError::InvalidPhone(vec![]),
        ApiError::InvalidCode,
        ApiError::PhoneUnverified,
        ApiError::EmailTaken,
        ApiError::EmailUnverified,
        ApiError::InvalidEmail(vec![]),
        ApiError::StepUpRequired,
        ApiError::MfaEnrolmentRequired,
        ApiError::MfaDisabled,
        ApiError::FactorExists,
        ApiError::FactorNotFound,
        ApiError::PasskeyRefused,
        ApiError::PasskeyLimit,
        ApiError::PasskeysDisabled,
        ApiError::SignupRefused("Invitation only.".into()),
        ApiError::UnknownProvider,
        ApiError::ProviderTokenRefused,
        ApiError::LinkRequired,
        ApiError::IdentityTaken,
        ApiError::LastSignInMethod,
        ApiError::RedirectNotAllowed,
        ApiError::FederationStateInvalid,
        ApiError::BrowserSignInOff,
    ];
    // No wildcard arm: a new variant stops this compiling until it is listed above too.
    let listed: BTreeSet<usize> = all
        .iter()
        .map(|e| match e {
            ApiError::Validation(_) => 0,
            ApiError::MalformedJson => 1,
            ApiError::UnsupportedMediaType => 2,
            ApiError::PayloadTooLarge(_) => 3,
            ApiError::Unauthorized => 4,
            ApiError::InvalidCredentials => 5,
            ApiError::Forbidden => 6,
            ApiError::CurrentPasswordIncorrect => 7,
            ApiError::PhoneTaken => 8,
            ApiError::NotFound => 9,
            ApiError::MethodNotAllowed => 10,
            ApiError::TooManyAttempts { .. } => 11,
            ApiError::Unavailable => 12,
            ApiError::Internal => 13,
            ApiError::WeakPassword(_) => 14,
            ApiError::AccountDisabled => 15,
            ApiError::UserNotFound => 16,
            ApiError::InvalidPhone(_) => 17,
            ApiError::InvalidCode => 18,
            ApiError::PhoneUnverified => 19,
            ApiError::EmailTaken => 20,
            ApiError::EmailUnverified => 21,
            ApiError::InvalidEmail(_) => 22,
            ApiError::StepUpRequired => 23,
            ApiError::MfaEnrolmentRequired => 24,
            ApiError::MfaDisabled => 25,
            ApiError::FactorExists => 26,
            ApiError::FactorNotFound => 27,
            ApiError::PasskeyRefused => 28,
            ApiError::PasskeyLimit => 29,
            ApiError::PasskeysDisabled => 30,
            ApiError::SignupRefused(_) => 31,
            ApiError::UnknownProvider => 32,
            ApiError::ProviderTokenRefused => 33,
            ApiError::LinkRequired => 34,
            ApiError::IdentityTaken => 35,
            ApiError::LastSignInMethod => 36,
            ApiError::RedirectNotAllowed => 37,
            ApiError::FederationStateInvalid => 38,
            ApiError::BrowserSignInOff => 39,
        })
        .collect();
    assert_eq!(listed, (0..40).collect(), "a variant is missing above");
    all
}

#[test]
pub(super) fn problem_codes_are_exactly_the_codes_api_error_produces() {
    let doc = doc();
    let enumerated: Vec<String> = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("ProblemCode enum")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let documented: BTreeSet<String> = enumerated.iter().cloned().collect();
    assert_eq!(
        documented.len(),
        enumerated.len(),
        "ProblemCode repeats a code"
    );
    let produced: Vec<&str> = every_api_error().iter().map(ApiError::code).collect();
    let produced_set: BTreeSet<String> = produced.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        produced_set.len(),
        produced.len(),
        "two variants share a code"
    );
    assert_eq!(documented, produced_set);
    // The Problem schema's `code` is that enum.
    assert_eq!(
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["$ref"],
        "#/components/schemas/ProblemCode"
    );
}

/// Every documented error response lists codes whose variant has that status, and each such
/// variant, rendered, matches the response (body and headers). This is also the check for
/// 500 and 503 in their rendered form; `full_flow` produces them for real as well.
#[test]
pub(super) fn each_documented_error_code_renders_as_its_response() {
    let doc = doc();
    let errors = every_api_error();
    let mut problems = Vec::new();
    for (method, path, status, code) in documented(&doc) {
        if code.is_empty() {
            continue;
        }
        let Some(variant) = errors.iter().find(|e| e.code() == code) else {
            problems.push(format!(
                "{method} {path} {status}: {code} is no ApiError code"
            ));
            continue;
        };
        if variant.status().as_u16() != status {
            problems.push(format!(
                "{method} {path} {status}: {code} is status {}",
                variant.status()
            ));
        }
        let rendered = every_api_error()
            .into_iter()
            .find(|e| e.code() == code)
            .unwrap()
            .into_response();
        for d in disagreements(&doc, &method, &path, &Answer::of(rendered)) {
            problems.push(format!("{method} {path} {status} {code}: {d}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. Every documented response happens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
pub(super) async fn every_documented_status_and_code_is_produced_by_the_handlers() {
    let doc = doc();
    let flow = full_flow().await;
    let produced: BTreeSet<(String, String, u16, String)> = flow
        .seen
        .iter()
        .map(|s| {
            (
                s.method.clone(),
                s.path.clone(),
                s.answer.status.as_u16(),
                s.answer.code().to_owned(),
            )
        })
        .collect();
    let missing: Vec<_> = documented(&doc).difference(&produced).cloned().collect();
    assert!(
        missing.is_empty(),
        "documented but never produced: {missing:?}\nthe flow gave:\n{}",
        flow.summary()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Every response matches the document
// ---------------------------------------------------------------------------------------------

#[tokio::test]
pub(super) async fn every_response_of_the_full_flow_matches_its_documented_schema_and_headers() {
    let doc = doc();
    let flow = full_flow().await;
    let mut problems = Vec::new();
    for s in &flow.seen {
        for d in disagreements(&doc, &s.method, &s.path, &s.answer) {
            problems.push(format!(
                "{} {} -> {} ({}): {d}\n    body {}",
                s.method,
                s.path,
                s.answer.status.as_u16(),
                s.what,
                s.answer.body
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checks above are not vacuous: answers the API must never give are refused.
#[test]
pub(super) fn the_document_refuses_answers_the_api_must_not_give() {
    let doc = doc();
    let json_answer = |status: u16, content_type: &str, body: Value| {
        Answer::of(
            lambda_http::Response::builder()
                .status(status)
                .header("content-type", content_type)
                .header("cache-control", "no-store")
                .body(lambda_http::Body::Text(body.to_string()))
                .unwrap(),
        )
    };
    let user = json!({"_id": {"$oid": "0123456789abcdef01234567"}, "first_name": "John",
                      "last_name": "Smith", "phone": "1234567890"});
    let good = json_answer(201, "application/json", user.clone());
    assert_eq!(
        disagreements(&doc, "POST", "/signup", &good),
        Vec::<String>::new()
    );
    let mut leaky = user.clone();
    leaky["password_hash"] = json!("$argon2id$...");
    let mut bad_id = user.clone();
    bad_id["_id"] = json!("0123456789abcdef01234567");
    let bad_problem = json!({"type": "https://user-api.dev/problems/teapot", "title": "t",
                             "status": 400, "detail": "d", "code": "teapot"});
    let validation_without_errors = json!({"type": "https://user-api.dev/problems/validation-failed",
        "title": "t", "status": 400, "detail": "d", "code": "validation_failed"});
    let phone_taken_as_400 = json!({"type": "https://user-api.dev/problems/phone-taken",
        "title": "t", "status": 400, "detail": "d", "code": "phone_taken"});
    let mut no_retry_after = Answer::of(
        ApiError::TooManyAttempts {
            retry_after_secs: 3,
        }
        .into_response(),
    );
    assert_eq!(
        disagreements(&doc, "POST", "/login", &no_retry_after),
        Vec::<String>::new()
    );
    no_retry_after.headers.remove("retry-after");
    let mut no_www_authenticate = Answer::of(ApiError::Unauthorized.into_response());
    no_www_authenticate.headers.remove("www-authenticate");
    let refused = |method: &str, path: &str, answer: Answer| {
        assert!(
            !disagreements(&doc, method, path, &answer).is_empty(),
            "{method} {path} accepted {} {:?} {}",
            answer.status,
            answer.headers,
            answer.body
        );
    };
    let (json, problem) = ("application/json", "application/problem+json");
    refused("POST", "/signup", json_answer(201, json, leaky));
    refused("POST", "/signup", json_answer(201, json, bad_id));
    refused("POST", "/signup", json_answer(201, problem, user.clone()));
    refused("POST", "/signup", json_answer(200, json, user.clone()));
    refused(
        "GET",
        "/user",
        json_answer(400, problem, validation_without_errors),
    );
    refused("POST", "/signup", json_answer(400, problem, bad_problem));
    refused(
        "POST",
        "/signup",
        json_answer(400, problem, phone_taken_as_400),
    );
    refused("POST", "/logout", json_answer(204, json, json!({})));
    refused("POST", "/login", no_retry_after);
    refused("GET", "/user", no_www_authenticate);
}
