//! Every body the documented schema accepts gets past the edge (property-based).

use super::*;

/// A validator for `schema` on its own (a property's schema: no references).
pub(super) fn standalone(schema: &Value) -> Arc<Validator> {
    Arc::new(
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(schema)
            .unwrap_or_else(|e| panic!("schema {schema}: {e}")),
    )
}

/// Values `schema` accepts: generated from its `enum`, `type`, `pattern`, lengths and
/// `properties`, then filtered through the schema itself, so every value is valid.
pub(super) fn valid_values(schema: &Value) -> BoxedStrategy<Value> {
    let shapes = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .filter(|b| b.iter().all(|b| b.get("type").is_some()));
    let strategy = if let Some(branches) = shapes {
        // Each alternative shape on its own (a link by provider token or by a sign-in code);
        // a `oneOf` of `required` lists only narrows the object its schema describes.
        prop::strategy::Union::new(branches.iter().map(valid_values)).boxed()
    } else if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        prop::sample::select(values.clone()).boxed()
    } else {
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            other => panic!("the body fuzzer needs a type or enum, got {other} in {schema}"),
        };
        let options: Vec<BoxedStrategy<Value>> = types
            .into_iter()
            .map(|t| match t {
                "null" => Just(Value::Null).boxed(),
                "string" => valid_strings(schema),
                "object" => valid_objects(schema),
                "array" => {
                    let max = schema["maxItems"].as_u64().unwrap_or(3).min(3) as usize;
                    prop::collection::vec(valid_values(&schema["items"]), 0..=max)
                        .prop_map(Value::Array)
                        .boxed()
                }
                other => panic!("the body fuzzer has no generator for type {other}: add one"),
            })
            .collect();
        prop::strategy::Union::new(options).boxed()
    };
    let check = standalone(schema);
    strategy
        .prop_filter("valid for its schema", move |v| check.is_valid(v))
        .boxed()
}

/// Strings matching the `pattern` (anchors dropped: proptest generates whole strings), pieces of
/// them joined so the lengths reach `maxLength` and past it. An unbounded `*` repeats at most
/// `maxLength / 16` times, so short fields (a phone) mostly fit their limit.
pub(super) fn valid_strings(schema: &Value) -> BoxedStrategy<Value> {
    let max = schema["maxLength"].as_u64().unwrap_or(64) as usize;
    let piece = match schema.get("pattern").and_then(Value::as_str) {
        Some(p) => {
            let inner = p
                .strip_prefix('^')
                .and_then(|p| p.strip_suffix('$'))
                .unwrap_or_else(|| panic!("pattern {p} is not anchored at both ends"));
            assert!(!inner.contains("\\*"), "pattern {p}: escaped '*'");
            let inner = inner.replace('*', &format!("{{0,{}}}", (max / 16).max(1)));
            let strings = |inner: &str| {
                proptest::string::string_regex(inner)
                    .unwrap_or_else(|e| panic!("pattern {p}: {e}"))
                    .boxed()
            };
            // A random character of `\u0080-\uFFFF` is rarely a letter or a valid IDNA
            // label, so nearly every address from the whole pattern is (rightly) refused by
            // the parser: half come from its ASCII part, which mostly parses.
            let ascii = inner.replace("\\u0080-\\uFFFF", "");
            if ascii == inner {
                strings(&inner)
            } else {
                prop_oneof![strings(&inner), strings(&ascii)].boxed()
            }
        }
        None => proptest::string::string_regex("(?s).{0,32}")
            .unwrap()
            .boxed(),
    };
    // An address is one piece: two joined hold two `@` and match nothing.
    let pieces = if schema["pattern"].as_str().is_some_and(|p| p.contains('@')) {
        1..=1
    } else {
        1..=max / 16 + 2
    };
    prop::collection::vec(piece, pieces)
        .prop_map(|pieces| Value::String(pieces.concat()))
        .boxed()
}

/// Objects with every required property and each optional one or not. An open object (a
/// browser's `PublicKeyCredential`, whose members grow with the spec) gets its declared
/// properties only: whatever else a client adds is not the fuzzer's to invent.
pub(super) fn valid_objects(schema: &Value) -> BoxedStrategy<Value> {
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_str().unwrap())
        .collect();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| {
            let is_required = required.contains(name.as_str());
            let (name, values) = (name.clone(), valid_values(s));
            let field = values.prop_map(move |v| (name.clone(), v));
            if is_required {
                field.prop_map(Some).boxed()
            } else {
                prop::option::of(field).boxed()
            }
        })
        .collect();
    fields
        .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
        .boxed()
}

/// Random bodies valid for each documented request schema, sent with valid credentials to a
/// fresh API on the embedded store: the schema and the edge's parsers (`domain/src/types.rs`)
/// must agree, so none is answered 400 `validation_failed`. `SCHEMA_FUZZ_CASES` sets the cases
/// per route (default 300).
#[test]
pub(super) fn bodies_the_documented_schema_accepts_are_never_refused_as_invalid() {
    let doc = doc();
    let cases = std::env::var("SCHEMA_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut fuzzed = 0;
    for ((method, path), op) in operations(&doc) {
        let route = format!("{method} {path}");
        let Some(file) = body_schema_file(&op, &route) else {
            continue;
        };
        fuzzed += 1;
        let (_, _, src) = SOURCES.iter().find(|(_, name, _)| *name == file).unwrap();
        let schema: Value = serde_json::from_str(src).unwrap();
        let whole = compiled_schema(&file);
        let bodies = valid_values(&schema)
            .prop_filter("valid for the route's schema", move |b| whole.is_valid(b));
        let secured = !op
            .get("security")
            .unwrap_or(&doc["security"])
            .as_array()
            .is_none_or(Vec::is_empty);
        let app = rt
            .block_on(TestApp::with(Backend::Memory, |_| {}))
            .with_passkeys(relying_party(10));
        let caller = std::sync::Mutex::new(rt.block_on(app.signed_in("1234567890")));
        let seen = std::sync::Mutex::new(BTreeMap::<(u16, String), u32>::new());
        // A body sent once is not sent again (logout's schema admits three bodies in all).
        let sent = std::sync::Mutex::new(BTreeSet::<String>::new());
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        });
        runner
            .run(&(bodies, any::<bool>()), |(mut body, own_id)| {
                let l = caller.lock().unwrap().clone();
                if own_id && body.get("_id").is_some() {
                    // Half the updates name the caller, so they reach the service too.
                    body["_id"] = json!({"$oid": l.id});
                }
                if !sent.lock().unwrap().insert(body.to_string()) {
                    return Ok(());
                }
                let mut ev = with_json_body(event_for(&method, &path), &body);
                if secured {
                    ev = with_bearer(ev, &l);
                }
                let a = rt.block_on(app.call(&ev));
                *seen
                    .lock()
                    .unwrap()
                    .entry((a.status.as_u16(), a.code().to_owned()))
                    .or_default() += 1;
                if a.status == 204 {
                    // A logout ended the session: later cases get a live one.
                    *caller.lock().unwrap() =
                        rt.block_on(login(&app.state, "1234567890", "securepassword123"));
                }
                prop_assert!(
                    !(a.status == 400 && a.code() == "validation_failed"),
                    "{route}: the schema accepts {body} but the route refused it: {:?}",
                    a.body
                );
                prop_assert!(
                    a.status.as_u16() < 500,
                    "{route}: {} {:?}",
                    a.status,
                    a.body
                );
                // (A refresh body is itself a credential: a random one is refused, rightly.)
                prop_assert!(
                    !secured || a.code() != "unauthorized",
                    "{route}: the credentials were refused: {:?}",
                    a.body
                );
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let seen = seen.into_inner().unwrap();
        eprintln!("schema fuzz {route}: {seen:?}");
        // Not vacuous: bodies reach past the edge to the service.
        assert!(
            // (`invalid_code` comes from the service: the code was compared.)
            // (`passkey_refused` too: the relying party read the credential and checked it.)
            seen.keys().any(|(status, code)| *status != 400
                || code == "weak_password"
                || code == "invalid_code"
                || code == "passkey_refused"),
            "{route}: no body got past the edge: {seen:?}"
        );
    }
    assert_eq!(fuzzed, SOURCES.len(), "every request schema is fuzzed");
}
