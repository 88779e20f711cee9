//! The issuer other services trust: `iss` is the URL the API is reached on (or `JWT_ISSUER`),
//! and the example route behind API Gateway's JWT authorizer accepts our tokens as a service
//! without our secret would: in the template (the authorizer's issuer and audience are the
//! functions'), in the deployed function (claims from the authorizer, nothing else) and on
//! the dev server (which stands in for the authorizer).

use api_tests::*;
use edge::routes::{Authorization, Endpoint, Function};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn claims_of(token: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `ev` as if it came in on `domain`.
fn on_domain(mut ev: Value, domain: &str) -> Value {
    ev["requestContext"]["domainName"] = domain.into();
    ev["headers"]["host"] = domain.into();
    ev
}

fn login_event(phone: &str) -> Value {
    with_body(
        event("login"),
        &json!({"phone": phone, "password": "securepassword123"}),
    )
}

#[tokio::test]
async fn tokens_name_the_url_the_request_came_in_on_and_are_refused_on_another() {
    let app = TestApp::mongo().await;
    assert_eq!(app.signup("5550001111").await.status, 201);
    let other = "xyz789.execute-api.eu-west-1.amazonaws.com";
    let a = Login::of(&app.call(&login_event("5550001111")).await);
    assert_eq!(claims_of(&a.token)["iss"], EVENT_ISSUER);
    let b = Login::of(&app.call(&on_domain(login_event("5550001111"), other)).await);
    assert_eq!(claims_of(&b.token)["iss"], format!("https://{other}"));
    let profile = |l: &Login, domain: &str| {
        on_domain(
            with_auth(event("get_user"), &l.token, &l.session_token),
            domain,
        )
    };
    assert_eq!(
        app.call(&profile(&a, "abc123.execute-api.us-east-1.amazonaws.com"))
            .await
            .status,
        200
    );
    assert_eq!(app.call(&profile(&b, other)).await.status, 200);
    // A token is good only where it was issued: another API's URL is another issuer.
    assert_eq!(app.call(&profile(&a, other)).await.status, 401);
    // Discovery names the same URL, so a verifier starting from `iss` finds our keys.
    let doc = app
        .call(&on_domain(
            event_for("GET", "/.well-known/openid-configuration"),
            other,
        ))
        .await;
    assert_eq!(doc.body["issuer"], format!("https://{other}"));
    assert_eq!(
        doc.body["jwks_uri"],
        format!("https://{other}/.well-known/jwks.json")
    );
}

#[tokio::test]
async fn jwt_issuer_names_one_issuer_whatever_url_the_request_came_in_on() {
    let app = TestApp::with(Backend::Mongo, |v| {
        v.set("JWT_ISSUER", "https://auth.example.com");
    })
    .await;
    assert_eq!(app.signup("5550002222").await.status, 201);
    let other = "xyz789.execute-api.eu-west-1.amazonaws.com";
    let l = Login::of(&app.call(&on_domain(login_event("5550002222"), other)).await);
    assert_eq!(claims_of(&l.token)["iss"], "https://auth.example.com");
    let profile = with_auth(event("get_user"), &l.token, &l.session_token);
    assert_eq!(app.call(&profile).await.status, 200);
    let doc = app
        .call(&event_for("GET", "/.well-known/openid-configuration"))
        .await;
    assert_eq!(doc.body["issuer"], "https://auth.example.com");
    assert_eq!(
        doc.body["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
}

#[tokio::test]
async fn the_deployed_example_function_answers_with_the_claims_the_authorizer_verified() {
    let ev = event_for("GET", "/example/whoami");
    // As Lambda runs it: no state at all (no secret, no database).
    assert!(!Function::Whoami.needs_state());
    let a = Answer::of(edge::handlers::stateless(Function::Whoami, request(&ev)).await);
    assert_eq!(a.status, 200, "{:?}", a.body);
    let claims = &ev["requestContext"]["authorizer"]["jwt"]["claims"];
    assert_eq!(a.body["user_id"]["$oid"], claims["sub"]);
    assert_eq!(&a.body["claims"], claims);
    assert_eq!(a.headers["cache-control"], "no-store");

    // Reached without the authorizer in front (a route misconfigured, a direct invoke), it
    // fails closed: the Authorization header alone proves nothing to it.
    let mut bare = ev.clone();
    bare["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let mut no_sub = ev.clone();
    no_sub["requestContext"]["authorizer"]["jwt"]["claims"]
        .as_object_mut()
        .unwrap()
        .remove("sub");
    for refused in [bare, no_sub] {
        let a = Answer::of(edge::handlers::stateless(Function::Whoami, request(&refused)).await);
        assert_eq!((a.status.as_u16(), a.code()), (401, "unauthorized"));
        assert_eq!(a.content_type(), "application/problem+json");
    }
}

/// The template parsed, CloudFormation tags as tagged values.
fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    serde_json::to_value(&yaml).unwrap()
}

#[test]
fn the_template_puts_the_example_route_behind_a_jwt_authorizer_for_this_issuer() {
    let t = template();
    let r = &t["Resources"];
    let endpoint = Endpoint::ExampleWhoami;
    assert_eq!(endpoint.authorization(), Authorization::Jwt);
    let route = &r["WhoamiRoute"]["Properties"];
    assert_eq!(
        route["RouteKey"],
        format!("{} {}", endpoint.method(), endpoint.path())
    );
    assert_eq!(route["AuthorizationType"], "JWT");
    assert_eq!(
        route["AuthorizerId"],
        json!({"!Ref": "IssuerJwtAuthorizer"})
    );
    assert_eq!(
        route["Target"],
        json!({"!Sub": "integrations/${WhoamiIntegration}"})
    );
    assert_eq!(
        r["WhoamiIntegration"]["Properties"]["IntegrationUri"],
        json!({"!Ref": "WhoamiFunction.Alias"})
    );
    assert_eq!(
        r["WhoamiFunction"]["Metadata"]["BuildProperties"]["Binary"],
        endpoint.function().name()
    );
    // The authorizer trusts exactly the issuer the stack publishes and the audience the
    // functions put in `aud`, and reads the header the seed's clients send.
    let auth = &r["IssuerJwtAuthorizer"]["Properties"];
    assert_eq!(auth["AuthorizerType"], "JWT");
    assert_eq!(
        auth["IdentitySource"],
        json!(["$request.header.Authorization"])
    );
    assert_eq!(
        auth["JwtConfiguration"]["Issuer"],
        t["Outputs"]["Issuer"]["Value"]
    );
    assert_eq!(
        auth["JwtConfiguration"]["Audience"],
        json!([{"!Ref": "JwtAudience"}])
    );
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(env["JWT_AUDIENCE"], json!({"!Ref": "JwtAudience"}));
    assert_eq!(env["JWT_ISSUER"], json!({"!Ref": "JwtIssuer"}));
    // Without JwtIssuer, the stack's issuer is the API's own URL: what the functions name.
    let issuer = &t["Outputs"]["Issuer"]["Value"]["!If"];
    assert_eq!(issuer[0], "HasJwtIssuer");
    assert_eq!(
        issuer[2],
        json!({"!Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"})
    );
    assert_eq!(
        t["Outputs"]["ApiUrl"]["Value"]["!Sub"],
        format!("{}/", issuer[2]["!Sub"].as_str().unwrap())
    );
    // API Gateway's JWT authorizer verifies RSA only: the example exists only under RS256.
    for part in [
        "IssuerJwtAuthorizer",
        "WhoamiIntegration",
        "WhoamiRoute",
        "WhoamiInvokePermission",
    ] {
        assert_eq!(r[part]["Condition"], "JwtAuthorizerExampleOn", "{part}");
    }
    let on = &t["Conditions"]["JwtAuthorizerExampleOn"]["!And"];
    assert!(
        on.as_array()
            .unwrap()
            .contains(&json!({"!Equals": [{"!Ref": "JwtAlgorithm"}, "RS256"]}))
    );
    // The example function holds no key: no secret policy.
    assert!(r["WhoamiFunction"]["Properties"].get("Policies").is_none());
}

#[test]
fn every_iam_route_in_the_table_is_iam_signed_in_the_template() {
    let t = template();
    assert_eq!(
        t["Resources"]["HttpApi"]["Properties"]["Auth"]["EnableIamAuthorizer"],
        true
    );
    let mut iam_in_template = Vec::new();
    for (_, resource) in t["Resources"].as_object().unwrap() {
        let Some(events) = resource["Properties"]["Events"].as_object() else {
            continue;
        };
        for (_, e) in events {
            let p = &e["Properties"];
            if p["Auth"]["Authorizer"] == "AWS_IAM" {
                iam_in_template.push(format!(
                    "{} {}",
                    p["Method"].as_str().unwrap(),
                    p["Path"].as_str().unwrap()
                ));
            }
        }
    }
    let mut iam_in_table: Vec<String> = Endpoint::ALL
        .into_iter()
        .filter(|e| e.authorization() == Authorization::Iam)
        .map(|e| format!("{} {}", e.method(), e.path()))
        .collect();
    iam_in_template.sort();
    iam_in_table.sort();
    assert_eq!(iam_in_template, iam_in_table);
    // The operators' managed policy allows exactly those routes.
    let t = template();
    let mut allowed: Vec<String> = t["Resources"]["AdminInvokePolicy"]["Properties"]
        ["PolicyDocument"]["Statement"][0]["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let arn = r["!Sub"].as_str().unwrap();
            let (_, route) = arn.split_once("${HttpApi}/*/").unwrap();
            let (method, path) = route.split_once('/').unwrap();
            format!("{method} /{path}")
        })
        .collect();
    let mut wanted: Vec<String> = iam_in_table
        .iter()
        .map(|r| r.replace("{id}", "*"))
        .collect();
    allowed.sort();
    wanted.sort();
    assert_eq!(allowed, wanted, "AdminInvokePolicy vs the IAM routes");
}

#[tokio::test]
async fn a_service_behind_the_jwt_authorizer_accepts_our_tokens_until_they_expire() {
    let server = dev_server::start_rs256();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let login = dev_server::signed_in_over_http(&http, &server.base, "5550003333").await;
    let token = login["token"].as_str().unwrap();
    let whoami = |authorization: Option<String>| {
        let mut req = http.get(url("/example/whoami"));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // The bare token (the seed's clients) and the Bearer form (everyone else) both pass.
    for authorization in [token.to_owned(), format!("Bearer {token}")] {
        let (status, body) = whoami(Some(authorization)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["user_id"], login["user_id"]);
        assert_eq!(body["claims"]["iss"], server.base);
        assert_eq!(body["claims"]["aud"], "user-api");
        assert_eq!(body["claims"]["sub"], login["user_id"]["$oid"]);
    }
    // Refused as API Gateway refuses: no token, a forged signature, an HS256 token under a
    // key of ours (the authorizer takes RSA only), garbage.
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.as_bytes()[10] == b'A' { "B" } else { "A" };
    let forged = format!("{signed}.{}{flipped}{}", &sig[..10], &sig[11..]);
    let claims = claims_of(token);
    let kid = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let head: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        head["kid"].as_str().unwrap().to_owned()
    };
    let hs256 = hs256_token(
        &json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
        &claims,
        SESSION_KEY,
    );
    for refused in [
        None,
        Some(forged),
        Some(hs256),
        Some("Bearer x.y.z".to_owned()),
    ] {
        let (status, body) = whoami(refused.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(body, json!({"message": "Unauthorized"}));
    }
    // After logout, routes that check the session refuse at once; a service that verifies
    // only the JWT accepts it until `exp` (JWT_TTL_SECONDS, 15 minutes by default).
    let session = login["session_token"].as_str().unwrap();
    let logout = http
        .post(url("/logout"))
        .header("authorization", token)
        .header("session-token", session)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let profile = http
        .get(url("/user"))
        .header("authorization", token)
        .header("session-token", session)
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 401);
    assert_eq!(whoami(Some(token.to_owned())).await.0, StatusCode::OK);
}

#[test]
fn the_pipelines_smoke_test_passes_on_the_dev_server_discovery_and_authorizer_included() {
    let server = dev_server::start(&dev_server::bin(), |cmd| {
        cmd.env("JWT_ALGORITHM", "RS256")
            .env("JWT_PRIVATE_KEY", rsa_pem("b"))
            .env("SESSION_SECRET_KEY", SESSION_KEY)
            .env("MONGO_URI", mongo_uri());
    });
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/smoke-test"))
        .arg(&server.base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "discovery (200)",
        "jwks (200)",
        "jwt-authorizer (200)",
        "jwt-authorizer-refuses (401)",
        "after-logout (401)",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
}
