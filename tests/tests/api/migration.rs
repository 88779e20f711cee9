//! Moving in: `user-admin export` / `import` round trips, imports of every accepted hash
//! format followed by login and rehash to the configured argon2id, idempotent re-imports,
//! duplicates by canonical phone refused, a large import streamed in flat memory, and the
//! service running directly on the Flask service's collection (documents as it stores them,
//! and documents of unexpected shapes, which must never produce a 500).

use std::path::PathBuf;

use api_tests::*;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};

// Werkzeug 3.1.9 generate_password_hash("securepassword123") with its default (scrypt) and
// with method="pbkdf2:sha256:1000": what the Flask service stores. (Werkzeug's default
// pbkdf2 count, 1,000,000, verifies too, but takes ~10 s in an unoptimised test build, past
// the request budget; the shared unit tests check the format at 1000.)
const WERKZEUG_SCRYPT: &str = "scrypt:32768:8:1$iClz1U7mbD94j9TQ$6dfcdd739696f49f899f57ce75ffb0d8c1ee0306b94e06805bc0966567d42ab11110499554512c904a26850f8d5570ed27adb6c4cb3a14d32db05d209b301cc6";
const WERKZEUG_PBKDF2: &str = "pbkdf2:sha256:1000$quN2PEPVmKAV1vaL$c0b5f2179d6bf052d1182e22bbb156413738185c6bab8dfcdc8351d7dd275103";
// PHP's documented password_hash() example, for "rasmuslerdorf".
const BCRYPT_2Y: &str = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";
const CURRENT: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

fn argon2_at(alg: argon2::Algorithm, m: u32, t: u32, password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::new(
        alg,
        argon2::Version::V0x13,
        argon2::Params::new(m, t, 1, None).unwrap(),
    )
    .hash_password(password.as_bytes())
    .unwrap()
    .to_string()
}

fn users(db: &str) -> mongodb::Collection<Document> {
    futures::executor::block_on(mongodb::Client::with_uri_str(mongo_uri()))
        .unwrap()
        .database(db)
        .collection("User")
}

async fn all_users(db: &str) -> Vec<Document> {
    let mut docs: Vec<Document> = users(db)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.sort_by_key(|d| d.get("_id").map(ToString::to_string));
    // `rev` counts a document's writes in one database (a concurrency check), not user data.
    for d in &mut docs {
        d.remove("rev");
    }
    docs
}

fn tmp_file(name: &str) -> PathBuf {
    let dir = root().join("target").join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{name}", fresh_db()))
}

/// `user-admin` on `db`.
fn cli(db: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    user_admin(db, args)
}

/// `import FILE` of these lines; the summary (last stdout line) and the skip lines.
fn import_lines(db: &str, lines: &[Value]) -> (Value, Vec<Value>) {
    let file = tmp_file("import.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let (code, mut out, err) = cli(db, &["import", file.to_str().unwrap()]);
    std::fs::remove_file(&file).ok();
    assert_eq!(code, 0, "{err}");
    let summary = out.pop().unwrap();
    (summary, out)
}

/// Logs in; panics unless 200.
async fn login_ok(app: &TestApp, phone: &str, password: &str) -> Login {
    let a = app.login(phone, password).await;
    assert_eq!(a.status, 200, "{phone}: {:?}", a.body);
    Login {
        id: a.body["user_id"]["$oid"].as_str().unwrap().to_owned(),
        token: a.body["token"].as_str().unwrap().to_owned(),
        session_token: a.body["session_token"].as_str().unwrap().to_owned(),
    }
}

fn line(phone: &str, hash: &str) -> Value {
    json!({"first_name": "Imported", "last_name": "User", "phone": phone, "password": hash})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hash_format_imports_logs_in_and_is_rehashed_to_the_configured_argon2id() {
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let other_argon2id = argon2_at(argon2::Algorithm::Argon2id, 8192, 1, "securepassword123");
    let argon2i = argon2_at(argon2::Algorithm::Argon2i, 4096, 3, "securepassword123");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "+12025550201",
            WERKZEUG_SCRYPT.to_owned(),
            "securepassword123",
        ),
        (
            "+12025550202",
            WERKZEUG_PBKDF2.to_owned(),
            "securepassword123",
        ),
        ("+12025550203", BCRYPT_2Y.to_owned(), "rasmuslerdorf"),
        (
            "+12025550204",
            BCRYPT_2Y.replace("$2y$", "$2a$"),
            "rasmuslerdorf",
        ),
        (
            "+12025550205",
            BCRYPT_2Y.replace("$2y$", "$2b$"),
            "rasmuslerdorf",
        ),
        ("+12025550206", other_argon2id, "securepassword123"),
        ("+12025550207", argon2i, "securepassword123"),
    ];
    let lines: Vec<Value> = cases.iter().map(|(p, h, _)| line(p, h)).collect();
    let (summary, skipped) = import_lines(&db, &lines);
    assert_eq!(summary["imported"], cases.len(), "{summary} {skipped:?}");
    for (phone, hash, password) in &cases {
        let stored = users(&db)
            .find_one(doc! {"phone": *phone})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.get_str("password_hash").unwrap(), hash.as_str());
        assert_eq!(
            app.login(phone, "wrong-password").await.status,
            401,
            "{hash}"
        );
        let ok = app.login(phone, password).await;
        assert_eq!(ok.status, 200, "{hash}: {:?}", ok.body);
        let after = users(&db)
            .find_one(doc! {"phone": *phone})
            .await
            .unwrap()
            .unwrap();
        let rehashed = after.get_str("password_hash").unwrap();
        assert!(rehashed.starts_with(CURRENT), "{hash} -> {rehashed}");
        assert!(after.get("password").is_none());
        assert_eq!(app.login(phone, password).await.status, 200, "after rehash");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_round_trips_and_a_second_import_changes_nothing() {
    let source = TestApp::mongo().await;
    let src_db = source.state.settings.db_name.clone();
    for phone in ["+12025550301", "+12025550302", "+12025550303"] {
        assert_eq!(source.signup(phone).await.status, 201);
    }
    let id = users(&src_db)
        .find_one(doc! {"phone": "+12025550303"})
        .await
        .unwrap()
        .unwrap()
        .get_object_id("_id")
        .unwrap()
        .to_hex();
    assert_eq!(cli(&src_db, &["disable", &id]).0, 0);

    let file = tmp_file("export.jsonl");
    let (code, _, err) = cli(&src_db, &["export", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 3);
    assert!(
        exported.contains(CURRENT),
        "the export carries the PHC hashes"
    );

    let target = TestApp::mongo().await;
    let dst_db = target.state.settings.db_name.clone();
    let (code, out, err) = cli(&dst_db, &["import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.last().unwrap()["imported"], 3, "{out:?}");
    assert_eq!(all_users(&src_db).await, all_users(&dst_db).await);
    assert_eq!(
        target
            .login("+12025550301", "securepassword123")
            .await
            .status,
        200
    );
    assert_eq!(
        target
            .login("+12025550303", "securepassword123")
            .await
            .code(),
        "account_disabled"
    );

    // Again: nothing inserted, nothing changed (the logged-in user's rehash-free argon2id
    // hash included), every user reported as already present.
    let before = all_users(&dst_db).await;
    let (code, out, _) = cli(&dst_db, &["import", file.to_str().unwrap()]);
    std::fs::remove_file(&file).ok();
    assert_eq!(code, 0);
    let summary = out.last().unwrap();
    assert_eq!(
        (
            &summary["imported"],
            &summary["already_present"],
            &summary["skipped"]
        ),
        (&json!(0), &json!(3), &json!(0)),
        "{summary}"
    );
    assert_eq!(all_users(&dst_db).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_refuse_duplicates_by_canonical_phone_and_report_why_without_values() {
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let lines = [
        json!({"_id": {"$oid": ObjectId::new().to_hex()}, "first_name": "A", "last_name": "B",
               "phone": "202-555-0401", "password": WERKZEUG_SCRYPT}),
        // The same canonical phone, typed differently, another record.
        json!({"_id": {"$oid": ObjectId::new().to_hex()}, "first_name": "C", "last_name": "D",
               "phone": "(202) 555 0401", "password": WERKZEUG_PBKDF2}),
        line("2025550402", "md5$abc$0123456789abcdef"),
        line("not a phone", WERKZEUG_SCRYPT),
        json!({"first_name": "", "last_name": "X", "phone": "2025550403", "password": WERKZEUG_SCRYPT}),
        json!({"first_name": "X", "last_name": "Y", "phone": "2025550404"}),
        json!({"_id": 17, "first_name": "X", "last_name": "Y", "phone": "2025550405", "password": WERKZEUG_SCRYPT}),
        json!(["not", "an", "object"]),
    ];
    let file = tmp_file("dups.jsonl");
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push_str("{ not json\n");
    std::fs::write(&file, text).unwrap();
    let (code, mut out, err) = cli(&db, &["import", file.to_str().unwrap()]);
    std::fs::remove_file(&file).ok();
    assert_eq!(code, 0, "{err}");
    let summary = out.pop().unwrap();
    assert_eq!(summary["imported"], 1, "{summary} {out:?}");
    assert_eq!(summary["skipped"], 8, "{summary} {out:?}");
    let reasons: Vec<(u64, String)> = out
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["skipped"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        (2, "phone: already registered"),
        (3, "password: unrecognised"),
        (4, "phone:"),
        (5, "first_name:"),
        (6, "password: missing"),
        (7, "_id:"),
        (8, "not a JSON object"),
        (9, "not a JSON object"),
    ];
    for (n, reason) in expect {
        assert!(
            reasons.iter().any(|(l, r)| *l == n && r.contains(reason)),
            "line {n}: want {reason:?} in {reasons:?}"
        );
    }
    let report = format!("{out:?}");
    for secret in ["scrypt:", "pbkdf2:", "iClz1U7", "555-0401", "md5$"] {
        assert!(!report.contains(secret), "report shows {secret}: {report}");
    }
    assert_eq!(count_users(&db, doc! {"phone": "2025550401"}).await, 1);
    assert_eq!(
        app.login("202.555.0401", "securepassword123").await.status,
        200
    );
}

/// Documents as the Flask service stores them (and some it should not have), written straight
/// into the collection this service reads.
async fn seed_flask_collection(db: &str) -> (ObjectId, ObjectId) {
    let typed = ObjectId::new();
    let canonical = ObjectId::new();
    let coll = users(db);
    coll.insert_many([
        doc! {"_id": canonical, "first_name": "John", "middle_name": "Doe", "last_name": "Smith",
        "password": WERKZEUG_SCRYPT, "phone": "1234567890"},
        doc! {"_id": typed, "first_name": "Jane", "middle_name": "", "last_name": "Roe",
        "password": WERKZEUG_PBKDF2, "phone": "202-555-0501"},
        // Unexpected shapes.
        doc! {"_id": "a-string-id", "first_name": "S", "last_name": "Id",
        "password": WERKZEUG_SCRYPT, "phone": "2025550510"},
        doc! {"_id": ObjectId::new(), "first_name": "N", "last_name": "Um",
        "password": WERKZEUG_SCRYPT, "phone": Bson::Int64(2025550511)},
        doc! {"_id": ObjectId::new(), "first_name": "No", "last_name": "Pw", "phone": "2025550512"},
        doc! {"_id": ObjectId::new(), "first_name": 42, "middle_name": Bson::Null,
        "password": WERKZEUG_SCRYPT, "phone": "2025550513", "disabled": "yes"},
        doc! {"_id": ObjectId::new(), "first_name": "Int", "last_name": "Pw",
        "password": 12345, "phone": "2025550514"},
    ])
    .await
    .unwrap();
    (typed, canonical)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_directly_on_the_flask_collection_and_odd_documents_never_500() {
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let (typed, canonical) = seed_flask_collection(&db).await;

    // A canonical phone logs in at once; the hash is replaced in place and `password` goes.
    let l = login_ok(&app, "1234567890", "securepassword123").await;
    let doc = users(&db)
        .find_one(doc! {"_id": canonical})
        .await
        .unwrap()
        .unwrap();
    assert!(doc.get_str("password_hash").unwrap().starts_with(CURRENT));
    assert!(doc.get("password").is_none(), "{doc}");
    let upd = app.put_user(&l, json!({"last_name": "Smythe"})).await;
    assert_eq!(upd.status, 200, "{:?}", upd.body);
    assert_eq!(
        users(&db)
            .find_one(doc! {"_id": canonical})
            .await
            .unwrap()
            .unwrap()
            .get_str("last_name")
            .unwrap(),
        "Smythe"
    );
    assert_eq!(app.get_user(&l).await.body["middle_name"], "Doe");

    // A phone stored as typed is not found until `normalize` rewrites it.
    assert_eq!(
        app.login("202-555-0501", "securepassword123").await.status,
        401
    );
    let (code, out, err) = cli(&db, &["normalize"]);
    assert_eq!(code, 0, "{err}");
    let summary = out.last().unwrap();
    assert_eq!(summary["changed"], 1, "{out:?}");
    assert_eq!(
        users(&db)
            .find_one(doc! {"_id": typed})
            .await
            .unwrap()
            .unwrap()
            .get_str("phone")
            .unwrap(),
        "2025550501"
    );
    app.clock.advance(60);
    assert_eq!(
        app.login("(202) 555-0501", "securepassword123")
            .await
            .status,
        200
    );
    // Normalising again changes nothing.
    assert_eq!(cli(&db, &["normalize"]).1.last().unwrap()["changed"], 0);

    // Documents of unexpected shapes: a 401 or a 200, never a 500.
    for phone in ["2025550510", "2025550511", "2025550512", "2025550514"] {
        let a = app.login(phone, "securepassword123").await;
        assert_eq!(a.status, 401, "{phone}: {:?}", a.body);
    }
    let odd = login_ok(&app, "2025550513", "securepassword123").await;
    let profile = app.get_user(&odd).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    let upd = app
        .put_user(&odd, json!({"first_name": "Fixed", "last_name": "Now"}))
        .await;
    assert_eq!(upd.status, 200, "{:?}", upd.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_the_flask_collection_canonicalises_and_skips_what_it_cannot_use() {
    let flask = TestApp::mongo().await;
    let flask_db = flask.state.settings.db_name.clone();
    seed_flask_collection(&flask_db).await;
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let args = [
        "import",
        "--from-mongo",
        &mongo_uri(),
        "--from-db",
        &flask_db,
        "--from-collection",
        "User",
    ];
    let (code, mut out, err) = cli(&db, &args);
    assert_eq!(code, 0, "{err}");
    let summary = out.pop().unwrap();
    // John, Jane and the numeric phone import; no password, no last name and a non-string
    // hash are skipped; the string _id is skipped as no ObjectId.
    assert_eq!(summary["imported"], 3, "{summary} {out:?}");
    assert_eq!(summary["skipped"], 4, "{summary} {out:?}");
    assert_eq!(
        app.login("202-555-0501", "securepassword123").await.status,
        200
    );
    assert_eq!(
        app.login("2025550511", "securepassword123").await.status,
        200
    );
    let (_, again, _) = cli(&db, &args);
    assert_eq!(again.last().unwrap()["already_present"], 3);
}

/// Ignored in the default run: ~25 s of back-to-back inserts slow the shared test server
/// enough that `store_conformance::forty_racing_reservations...`, running beside it, has seen
/// lost reservation answers (granted [1, 5] of 5). Run it on its own:
/// `cargo test -p api-tests --test api -- --ignored migration::a_large_import`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: run on its own (see the comment)"]
async fn a_large_import_streams_in_flat_memory() {
    // LARGE_IMPORT_USERS=1000000 runs the full size (about 35 minutes against the test server).
    let large: usize = std::env::var("LARGE_IMPORT_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let small = 1_000;
    let mut peaks = Vec::new();
    for n in [small, large] {
        let file = tmp_file("large.jsonl");
        {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for i in 0..n {
                writeln!(
                    w,
                    "{}",
                    json!({"first_name": "Bulk", "last_name": format!("User{i}"),
                           "phone": format!("+1{:010}", 3_000_000_000u64 + i as u64),
                           "password": WERKZEUG_SCRYPT})
                )
                .unwrap();
            }
        }
        let db = fresh_db();
        let started = std::time::Instant::now();
        let (code, out, err) = cli(&db, &["import", file.to_str().unwrap()]);
        std::fs::remove_file(&file).ok();
        assert_eq!(code, 0, "{err}");
        let summary = out.last().unwrap().clone();
        assert_eq!(summary["imported"], n, "{summary}");
        assert_eq!(count_users(&db, doc! {}).await, n as u64);
        let peak = summary["peak_rss_kib"].as_u64().unwrap();
        eprintln!(
            "import of {n} users: {:.1} s, peak RSS {peak} KiB",
            started.elapsed().as_secs_f64()
        );
        peaks.push(peak);
    }
    let grew_kib = peaks[1].saturating_sub(peaks[0]);
    let per_user = grew_kib as f64 * 1024.0 / (large - small) as f64;
    eprintln!(
        "peak RSS {} KiB at {small} users, {} KiB at {large}: {per_user:.2} bytes per extra user",
        peaks[0], peaks[1]
    );
    // Flat: the 10x larger file costs under 4 MiB more peak memory (allocator noise): no
    // per-user state is kept.
    assert!(grew_kib < 4 * 1024, "peak grew {grew_kib} KiB: {peaks:?}");
}
