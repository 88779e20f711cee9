use super::*;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn vars(pairs: &[(&str, &str)]) -> Vars {
    Vars::from_pairs(pairs.iter().copied())
}

fn err(pairs: &[(&str, &str)]) -> SmsConfigError {
    match SmsSettings::from_vars(&vars(pairs)) {
        Ok(_) => panic!("accepted: {pairs:?}"),
        Err(e) => e,
    }
}

#[test]
fn no_sender_means_sms_is_off() {
    let s = SmsSettings::from_vars(&Vars::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.sender.is_none());
    assert_eq!(s.default_region, "US");
    assert_eq!(s.timeout, Duration::from_secs(3));
    assert!(s.test_numbers.is_empty());
}

#[test]
fn sns_reads_region_endpoint_sender_id_and_origination() {
    let s = SmsSettings::from_vars(&vars(&[
        ("SMS_SENDER", "SNS"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ("AWS_ENDPOINT_URL_SNS", "http://127.0.0.1:5001"),
        ("SMS_SENDER_ID", "UserApi"),
        ("SMS_ORIGINATION_NUMBER", "+1 (833) 555-0100"),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.sender,
        Some(SenderConfig::Sns(SnsConfig {
            region: "eu-west-1".into(),
            endpoint: Some("http://127.0.0.1:5001".into()),
            sender_id: Some("UserApi".into()),
            origination_number: Some("+18335550100".into()),
        }))
    );
    assert_eq!(
        err(&[("SMS_SENDER", "sns")]),
        SmsConfigError::Missing("AWS_REGION")
    );
    for bad in ["", "User-Api", "TwelveLetter", "12345"] {
        if bad.is_empty() {
            continue;
        }
        let e = err(&[
            ("SMS_SENDER", "sns"),
            ("AWS_REGION", "x"),
            ("SMS_SENDER_ID", bad),
        ]);
        assert!(
            matches!(
                e,
                SmsConfigError::Invalid {
                    name: "SMS_SENDER_ID",
                    ..
                }
            ),
            "{bad}: {e}"
        );
        assert!(!e.to_string().contains(bad), "{e}");
    }
    let e = err(&[
        ("SMS_SENDER", "sns"),
        ("AWS_REGION", "x"),
        ("SMS_ORIGINATION_NUMBER", "call-me"),
    ]);
    assert!(matches!(
        e,
        SmsConfigError::Invalid {
            name: "SMS_ORIGINATION_NUMBER",
            ..
        }
    ));
}

#[test]
fn webhook_needs_an_https_or_loopback_url_and_a_whsec_secret() {
    let ok = |url: &str| {
        SmsSettings::from_vars(&vars(&[
            ("SMS_SENDER", "webhook"),
            ("SMS_WEBHOOK_URL", url),
            ("SMS_WEBHOOK_SECRET", WHSEC),
        ]))
    };
    for good in [
        "https://sms.example.com/send",
        "http://127.0.0.1:8080/sms",
        "http://localhost/sms",
        "http://[::1]:9/x",
    ] {
        let s = ok(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        let Some(SenderConfig::Webhook(w)) = s.sender else {
            panic!("{good}")
        };
        assert_eq!(w.url, good);
        assert_eq!(w.secret.expose().len(), 24);
    }
    for bad in [
        "http://sms.example.com/send",
        "ftp://127.0.0.1/x",
        "https://user:pw@sms.example.com/",
        "not a url",
        "/relative",
    ] {
        let e = ok(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(
            matches!(
                e,
                SmsConfigError::Invalid {
                    name: "SMS_WEBHOOK_URL",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
    let secret = |s: &str| {
        SmsSettings::from_vars(&vars(&[
            ("SMS_SENDER", "webhook"),
            ("SMS_WEBHOOK_URL", "https://x.example"),
            ("SMS_WEBHOOK_SECRET", s),
        ]))
        .err()
    };
    for bad in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_!!!",
        "whsec_c2hvcnQ=",
    ] {
        let e = secret(bad).unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(
            matches!(
                e,
                SmsConfigError::Invalid {
                    name: "SMS_WEBHOOK_SECRET",
                    ..
                }
            ),
            "{e}"
        );
        assert!(!e.to_string().contains(bad), "{e}");
    }
    assert_eq!(
        secret("").or(secret("   ")),
        Some(SmsConfigError::Missing("SMS_WEBHOOK_SECRET"))
    );
}

#[test]
fn the_log_sender_needs_the_explicit_flag_and_never_runs_in_lambda() {
    let e = err(&[("SMS_SENDER", "log")]);
    assert!(e.to_string().contains("SMS_ALLOW_LOG_SENDER"), "{e}");
    let s = SmsSettings::from_vars(&vars(&[
        ("SMS_SENDER", "log"),
        ("SMS_ALLOW_LOG_SENDER", "1"),
    ]));
    assert_eq!(s.map(|s| s.sender), Ok(Some(SenderConfig::Log)));
    let e = err(&[
        ("SMS_SENDER", "log"),
        ("SMS_ALLOW_LOG_SENDER", "1"),
        ("AWS_LAMBDA_FUNCTION_NAME", "login"),
    ]);
    assert!(e.to_string().contains("Lambda"), "{e}");
    let dev = SmsSettings::for_dev_server(&Vars::default()).map(|s| s.sender);
    assert_eq!(dev, Ok(Some(SenderConfig::Log)));
    // The dev server honours an explicit choice.
    let dev = SmsSettings::for_dev_server(&vars(&[("SMS_SENDER", "sns"), ("AWS_REGION", "r")]));
    assert!(matches!(
        dev.map(|s| s.sender),
        Ok(Some(SenderConfig::Sns(_)))
    ));
    assert!(matches!(
        err(&[("SMS_SENDER", "carrier-pigeon")]),
        SmsConfigError::Invalid {
            name: "SMS_SENDER",
            ..
        }
    ));
}

#[test]
fn test_numbers_map_fictional_phones_to_fixed_codes() {
    let s = SmsSettings::from_vars(&vars(&[(
        "SMS_TEST_NUMBERS",
        "+15555550100:123456, +1 (555) 555-0101:654321,",
    )]))
    .unwrap_or_else(|e| panic!("{e}"));
    let p = s
        .parse_phone("+1 555 555 0100")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.test_code(&p).map(Code::expose), Some("123456"));
    let p = s
        .parse_phone("+15555550101")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.test_code(&p).map(Code::expose), Some("654321"));
    // A real number is parsed strictly and is no test number; other fictional ones fail.
    let real = s
        .parse_phone("(202) 555-0101")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(real.as_str(), "+12025550101");
    assert_eq!(s.test_code(&real), None);
    assert_eq!(s.parse_phone("+15555550102"), Err(PhoneError::Invalid));
    // Test numbers must be written with '+' when parsed as input.
    assert_eq!(s.parse_phone("5555550100"), Err(PhoneError::Invalid));
}

#[test]
fn parse_phone_applies_the_allow_list_but_test_numbers_pass_it() {
    let s = SmsSettings::from_vars(&vars(&[
        ("SMS_ALLOWED_COUNTRY_CODES", "44"),
        ("SMS_TEST_NUMBERS", "+15555550100:123456"),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.parse_phone("+12025550101"),
        Err(PhoneError::CountryNotAllowed)
    );
    assert_eq!(
        s.parse_phone("(202) 555-0101"),
        Err(PhoneError::CountryNotAllowed)
    );
    assert_eq!(
        s.parse_phone("+44 7400 123456").map(|p| p.calling_code()),
        Ok(Some(44))
    );
    // Nothing is sent to a test number, so the cost allow-list does not apply to it.
    assert_eq!(
        s.parse_phone("+1 555 555 0100")
            .map(|p| p.as_str().to_owned()),
        Ok("+15555550100".to_owned())
    );
}

#[test]
fn bad_test_numbers_are_refused_without_echoing_them() {
    for (bad, why) in [
        ("+15555550100", "not phone:code"),
        ("+15555550100:12345", "six digits"),
        ("+15555550100:12345a", "six digits"),
        ("5555550100:123456", "country code"),
        ("+12025550101:123456", "fictional"),
        ("+15555550100:123456,+1 555 555 0100:111111", "repeats"),
    ] {
        let e = err(&[("SMS_TEST_NUMBERS", bad)]);
        let msg = e.to_string();
        assert!(
            msg.contains("SMS_TEST_NUMBERS") && msg.contains(why),
            "{bad}: {msg}"
        );
        assert!(!msg.contains("555") && !msg.contains("1234"), "{msg}");
    }
}

#[test]
fn region_and_timeout_are_checked() {
    let s = SmsSettings::from_vars(&vars(&[
        ("PHONE_DEFAULT_REGION", "gb"),
        ("SMS_TIMEOUT_SECONDS", "5"),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.default_region.as_str(), s.timeout),
        ("GB", Duration::from_secs(5))
    );
    assert_eq!(
        s.parse_phone("020 7946 0958").map(|p| p.calling_code()),
        Ok(Some(44))
    );
    assert!(matches!(
        err(&[("PHONE_DEFAULT_REGION", "ZZ")]),
        SmsConfigError::Invalid {
            name: "PHONE_DEFAULT_REGION",
            ..
        }
    ));
    for bad in ["0", "-1", "3s", "99999999999"] {
        assert!(matches!(
            err(&[("SMS_TIMEOUT_SECONDS", bad)]),
            SmsConfigError::Invalid {
                name: "SMS_TIMEOUT_SECONDS",
                ..
            }
        ));
    }
}
