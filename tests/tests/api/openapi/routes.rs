//! Routes: the document, the router and the template declare the same routes, and the
//! documented security is what each route demands.

use super::*;

#[test]
pub(super) fn the_document_the_router_and_the_template_declare_the_same_routes() {
    let documented: BTreeSet<RouteKey> = operations(&doc()).into_keys().collect();
    let router: BTreeSet<RouteKey> = Endpoint::ALL
        .iter()
        .map(|r| (r.method().to_owned(), r.path().to_owned()))
        .collect();
    assert_eq!(
        router.len(),
        Endpoint::ALL.len(),
        "the router repeats a route"
    );
    assert_eq!(documented, router, "openapi.yaml vs the router's ROUTES");
    let template: BTreeSet<RouteKey> = template_routes()
        .into_iter()
        .map(|(_, method, path)| (method, path))
        .collect();
    assert_eq!(documented, template, "openapi.yaml vs template.yaml");
}

/// Sends `ev` with a body the route accepts, if it documents one.
pub(super) async fn with_sample_body(
    doc: &Value,
    method: &str,
    path: &str,
    state: &State,
    ev: Value,
) -> Answer {
    let ev = match sample_for(doc, method, path, state).await {
        Some(body) => with_json_body(ev, &body),
        None => ev,
    };
    let a = call(state, &ev).await;
    restore_if_deleted(state, method, path, &a).await;
    a
}

#[tokio::test]
pub(super) async fn documented_security_matches_what_each_route_demands() {
    let doc = doc();
    let schemes = &doc["components"]["securitySchemes"];
    let (state, _) = mongo_state().await;
    let state = state.with_passkeys(Some(relying_party(10)));
    signed_in(&state, "1234567890").await;
    for ((method, path), op) in operations(&doc) {
        let requirements = op
            .get("security")
            .unwrap_or(&doc["security"])
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: no security requirements"))
            .clone();
        if requirements.iter().any(|alt| alt.get("iamSigV4").is_some()) {
            // IAM-signed: API Gateway checks the signature; the function needs the identity
            // it leaves in the context, and an end user's tokens are no substitute.
            assert_eq!(requirements.len(), 1, "{method} {path}: IAM or nothing");
            let (id, phone) = throwaway(&state).await;
            let a = call(&state, &admin_event_for(&method, &path, &id, &phone)).await;
            assert!(
                a.status.is_success(),
                "{method} {path}: {} {:?}",
                a.status,
                a.body
            );
            let (id, phone) = throwaway(&state).await;
            let l = login(&state, "1234567890", "securepassword123").await;
            let unsigned = with_bearer(
                without_iam(admin_event_for(&method, &path, &id, &phone)),
                &l,
            );
            let a = call(&state, &unsigned).await;
            assert_eq!(
                (a.status.as_u16(), a.code()),
                (401, "unauthorized"),
                "{method} {path} without IAM: {:?}",
                a.body
            );
            continue;
        }
        if requirements
            .iter()
            .any(|alt| alt.get("issuerJwt").is_some())
        {
            // Behind API Gateway's JWT authorizer: the function needs the claims the
            // authorizer leaves in the context; a JWT in the header is no substitute.
            assert_eq!(
                requirements.len(),
                1,
                "{method} {path}: the authorizer or nothing"
            );
            let verified = event_for(&method, &path);
            let a = call(&state, &verified).await;
            assert!(
                a.status.is_success(),
                "{method} {path}: {} {:?}",
                a.status,
                a.body
            );
            let l = login(&state, "1234567890", "securepassword123").await;
            let a = call(&state, &with_bearer(without_iam(verified), &l)).await;
            assert_eq!(
                (a.status.as_u16(), a.code()),
                (401, "unauthorized"),
                "{method} {path} without the authorizer: {:?}",
                a.body
            );
            continue;
        }
        let bare = without_auth(event_for(&method, &path));
        let a = with_sample_body(&doc, &method, &path, &state, bare.clone()).await;
        let public = requirements.is_empty();
        assert_eq!(
            a.status == 401 && a.code() == "unauthorized",
            !public,
            "{method} {path}: documented {}, without credentials got {} {:?}",
            if public { "public" } else { "secured" },
            a.status,
            a.body
        );
        if public {
            continue;
        }
        // The two Authorization forms the handlers take: each works iff the document offers it.
        let offers = |form: &str| {
            requirements.iter().any(|alt| {
                alt.as_object().unwrap().keys().any(|name| {
                    let s = &schemes[name];
                    match form {
                        "Bearer" => s["type"] == "http" && s["scheme"] == "bearer",
                        _ => {
                            s["type"] == "apiKey"
                                && s["in"] == "header"
                                && s["name"].as_str().map(str::to_ascii_lowercase)
                                    == Some("authorization".to_owned())
                        }
                    }
                })
            })
        };
        for form in ["Bearer", "bare"] {
            let l = login(&state, "1234567890", "securepassword123").await;
            let authorization = match form {
                "Bearer" => format!("Bearer {}", l.token),
                _ => l.token.clone(),
            };
            let ev = with_auth(bare.clone(), &authorization, &l.session_token);
            let a = with_sample_body(&doc, &method, &path, &state, ev).await;
            // Authenticated is what is asked here: a sample body may still be refused for what
            // it says (a second-factor code of an account without one).
            let authenticated = !(a.status == 401 && a.code() == "unauthorized");
            assert_eq!(
                authenticated,
                offers(form),
                "{method} {path}: Authorization as {form} JWT answered {} {:?}; documented: {}",
                a.status,
                a.body,
                offers(form)
            );
        }
        // Each documented alternative, headers built from its schemes, is enough on its own.
        for alternative in requirements {
            let l = login(&state, "1234567890", "securepassword123").await;
            let mut ev = bare.clone();
            for name in alternative.as_object().unwrap().keys() {
                let s = &schemes[name];
                let (header, value) = match (s["type"].as_str(), s["in"].as_str()) {
                    (Some("http"), _) => {
                        assert_eq!(s["scheme"], "bearer", "{name}");
                        ("authorization".to_owned(), format!("Bearer {}", l.token))
                    }
                    (Some("apiKey"), Some("header")) => {
                        let h = s["name"].as_str().unwrap().to_ascii_lowercase();
                        let v = match h.as_str() {
                            "authorization" => l.token.clone(),
                            "session-token" => l.session_token.clone(),
                            other => panic!("{name}: the API reads no {other} header"),
                        };
                        (h, v)
                    }
                    other => panic!("{name}: unexpected security scheme {other:?}"),
                };
                ev = with_header(ev, &header, Some(&value));
            }
            let a = with_sample_body(&doc, &method, &path, &state, ev).await;
            assert!(
                !(a.status == 401 && a.code() == "unauthorized"),
                "{method} {path} with {alternative}: {} {:?}",
                a.status,
                a.body
            );
        }
    }
}
