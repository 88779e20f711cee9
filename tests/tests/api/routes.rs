//! `template.yaml` is the route table; the shared router must serve exactly its routes, each
//! with the binary the template builds for it.

use edge::routes::{Endpoint, Function};

#[test]
fn template_and_router_declare_the_same_routes() {
    let mut from_template = api_tests::template_routes();
    let mut from_router: Vec<_> = Endpoint::ALL
        .iter()
        .map(|e| {
            (
                e.function().name().to_owned(),
                e.method().to_owned(),
                e.path().to_owned(),
            )
        })
        .collect();
    from_template.sort();
    from_router.sort();
    assert_eq!(from_template, from_router);
}

#[test]
fn every_template_binary_is_a_workspace_function() {
    for (binary, _, _) in api_tests::template_routes() {
        assert!(
            Function::from_name(&binary).is_some(),
            "template builds {binary}, which the route table does not know"
        );
        assert!(
            api_tests::root()
                .join("functions")
                .join(&binary)
                .join("src/main.rs")
                .exists(),
            "template builds {binary}, which has no functions/{binary}"
        );
    }
}

#[tokio::test]
async fn every_route_reaches_its_handler_through_the_router() {
    let (state, _) = api_tests::state_on(api_tests::Backend::Memory, api_tests::settings).await;
    for r in Endpoint::ALL {
        let mut ev = api_tests::event("signup");
        ev["rawPath"] = r.path().into();
        ev["requestContext"]["http"]["path"] = r.path().into();
        ev["requestContext"]["http"]["method"] = r.method().into();
        let a = api_tests::call(&state, &ev).await;
        // A handler's own 404 (an unknown provider here) has its own code; the router's is
        // `not_found`.
        let missed = a.status == 404 && a.code() == "not_found";
        assert!(
            !missed && a.status != 405,
            "{r:?} -> {} {:?}",
            a.status,
            a.body
        );
    }
}
