use serde_json::json;

use super::*;

#[test]
fn a_pre_token_answer_sets_and_removes_claims_but_never_a_reserved_one() {
    let mut g = Grants::default();
    g.claims.insert("tenant".into(), json!("acme"));
    apply_pre_token(&json!({"claims": {"plan": "pro", "tenant": null}}), &mut g).unwrap();
    assert_eq!(Value::Object(g.claims.clone()), json!({"plan": "pro"}));
    for bad in [
        json!({"claims": {"sub": "someone-else"}}),
        json!({"claims": {"scope": "aal2"}}),
        json!({"claims": ["plan"]}),
    ] {
        let before = g.clone();
        assert!(apply_pre_token(&bad, &mut g).is_err(), "{bad}");
        assert_eq!(g, before, "a refused answer changes nothing");
    }
    apply_pre_token(&json!({}), &mut g).unwrap();
}

#[test]
fn a_pre_signup_answer_allows_proves_or_refuses_with_a_clean_message() {
    use crate::identity::IdentifierKind;
    assert_eq!(
        read_pre_signup(&json!({"decision": "allow"})).unwrap(),
        SignupDecision::Allow { verified: vec![] }
    );
    assert_eq!(
        read_pre_signup(&json!({"decision": "allow", "verified": ["email"]})).unwrap(),
        SignupDecision::Allow {
            verified: vec![IdentifierKind::Email]
        }
    );
    let long = "x".repeat(500);
    let SignupDecision::Refuse { message } =
        read_pre_signup(&json!({"decision": "refuse", "message": format!("no\n{long}")})).unwrap()
    else {
        panic!("a refusal")
    };
    assert_eq!(message.chars().count(), 200);
    assert!(!message.contains('\n'));
    for bad in [
        json!({}),
        json!({"decision": "maybe"}),
        json!({"decision": "allow", "verified": ["passkey"]}),
    ] {
        assert!(read_pre_signup(&bad).is_err(), "{bad}");
    }
}

#[test]
fn a_custom_mail_answer_replaces_only_the_parts_it_gives_and_must_carry_the_code() {
    let default = || crate::email::Message {
        subject: "Your code".into(),
        text: "Code 123456".into(),
        html: "<p>Code 123456</p>".into(),
    };
    let m = read_custom_mail(&json!({"text": "Use 123456 now"}), "123456", default()).unwrap();
    assert_eq!(
        (m.subject.as_str(), m.text.as_str(), m.html.as_str()),
        ("Your code", "Use 123456 now", "<p>Code 123456</p>")
    );
    for bad in [
        json!({"text": "no code here"}),
        json!({"html": "<p>none</p>"}),
        json!({"subject": "two\nlines"}),
        json!({"subject": 7}),
    ] {
        assert!(
            read_custom_mail(&bad, "123456", default()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn post_confirmation_fails_open_only() {
    let vars = |pairs: &[(&str, &str)]| Vars::from_pairs(pairs.iter().copied());
    let base = [
        ("HOOK_POST_CONFIRMATION_FUNCTION", "confirmed"),
        ("AWS_REGION", "us-east-1"),
    ];
    let spec = HookSpec::from_vars(&vars(&base), HookKind::PostConfirmation)
        .unwrap()
        .unwrap();
    assert_eq!(spec.policy, FailurePolicy::Open);
    let mut closed = base.to_vec();
    closed.push(("HOOK_POST_CONFIRMATION_FAILURE", "closed"));
    assert!(HookSpec::from_vars(&vars(&closed), HookKind::PostConfirmation).is_err());
}

#[test]
fn a_lambda_hook_is_a_name_or_an_arn_whose_region_wins() {
    let vars = |pairs: &[(&str, &str)]| Vars::from_pairs(pairs.iter().copied());
    let target = |pairs: &[(&str, &str)]| {
        HookSpec::from_vars(&vars(pairs), HookKind::PreSignup)
            .unwrap()
            .unwrap()
            .target
    };
    assert_eq!(
        target(&[
            (
                "HOOK_PRE_SIGNUP_FUNCTION",
                "arn:aws:lambda:eu-west-1:123456789012:function:signup-hook:live"
            ),
            ("AWS_REGION", "us-east-1"),
        ]),
        HookTarget::Lambda(LambdaTarget {
            function: "arn:aws:lambda:eu-west-1:123456789012:function:signup-hook:live".into(),
            region: "eu-west-1".into(),
            endpoint: None,
        })
    );
    assert_eq!(
        target(&[
            ("HOOK_PRE_SIGNUP_FUNCTION", "signup-hook"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9000"),
        ]),
        HookTarget::Lambda(LambdaTarget {
            function: "signup-hook".into(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
        })
    );
}

#[test]
fn a_hook_needs_a_safe_url_and_a_secret_and_says_how_it_fails() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let vars = |pairs: &[(&str, &str)]| Vars::from_pairs(pairs.iter().copied());
    assert_eq!(
        HookSpec::from_vars(&vars(&[]), HookKind::PreToken).unwrap(),
        None
    );
    let s = HookSpec::from_vars(
        &vars(&[
            ("HOOK_PRE_TOKEN_URL", "https://hooks.example.com/pre-token"),
            ("HOOK_PRE_TOKEN_SECRET", secret),
        ]),
        HookKind::PreToken,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (s.timeout, s.policy),
        (Duration::from_secs(2), FailurePolicy::Closed)
    );
    for (pairs, why) in [
        (
            vec![
                ("HOOK_PRE_TOKEN_URL", "http://hooks.example.com/x"),
                ("HOOK_PRE_TOKEN_SECRET", secret),
            ],
            "plain http off loopback",
        ),
        (
            vec![("HOOK_PRE_TOKEN_URL", "https://h.example.com")],
            "no secret",
        ),
        (
            vec![
                ("HOOK_PRE_TOKEN_URL", "https://h.example.com"),
                ("HOOK_PRE_TOKEN_SECRET", secret),
                ("HOOK_PRE_TOKEN_FAILURE", "maybe"),
            ],
            "an unknown policy",
        ),
        (
            vec![
                ("HOOK_PRE_TOKEN_URL", "https://h.example.com"),
                ("HOOK_PRE_TOKEN_SECRET", secret),
                ("HOOK_PRE_TOKEN_TIMEOUT_MS", "60000"),
            ],
            "a timeout past 10 s",
        ),
        (
            vec![
                ("HOOK_PRE_TOKEN_URL", "https://h.example.com"),
                ("HOOK_PRE_TOKEN_SECRET", secret),
                ("HOOK_PRE_TOKEN_FUNCTION", "claims-hook"),
            ],
            "a webhook and a function",
        ),
        (
            vec![
                ("HOOK_PRE_TOKEN_FUNCTION", "claims hook"),
                ("AWS_REGION", "eu-west-1"),
            ],
            "a name with a space",
        ),
        (
            vec![(
                "HOOK_PRE_TOKEN_FUNCTION",
                "arn:aws:lambda:eu-west-1:12345:function:claims-hook",
            )],
            "an ARN with a short account",
        ),
        (
            vec![("HOOK_PRE_TOKEN_FUNCTION", "claims-hook")],
            "a name and no region",
        ),
    ] {
        assert!(
            HookSpec::from_vars(&vars(&pairs), HookKind::PreToken).is_err(),
            "{why}"
        );
    }
}
