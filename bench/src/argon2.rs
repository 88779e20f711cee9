//! argon2id hash and verify of the crate the functions use, against the C reference
//! (argon2-cffi, libargon2) at equal parameters: the target is <= 1.2x.

use std::{process::Command, time::Instant};

use serde_json::Value;

use crate::common::{Table, median, ms, python};

pub(crate) fn argon2(table: &mut Table, n: usize) {
    use domain::{auth::password, types::Password};
    let pw = Password::unchecked("securepassword123".into());
    let mut hashes = Vec::new();
    let mut hash_t = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        hashes.push(password::hash_blocking(&pw).unwrap());
        hash_t.push(ms(t.elapsed()));
    }
    let mut verify_t = Vec::new();
    for h in hashes.iter().take(n) {
        let t = Instant::now();
        assert!(password::verify_blocking(&pw, h));
        verify_t.push(ms(t.elapsed()));
    }
    let (rh, rv) = (median(hash_t), median(verify_t));
    let out = Command::new(python())
        .arg(api_tests::root().join("bench/argon2_ref.py"))
        .arg(n.to_string())
        .output();
    let reference: Option<Value> = out
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok());
    let how = "argon2id m=19456 KiB t=2 p=1, median of runs in this process";
    table.add(
        "argon2id hash, this crate (RustCrypto argon2)",
        format!("{rh:.2}"),
        "ms",
        "",
        how,
    );
    table.add(
        "argon2id verify, this crate",
        format!("{rv:.2}"),
        "ms",
        "",
        how,
    );
    match reference {
        Some(r) => {
            let (ch, cv) = (
                r["hash_ms"].as_f64().unwrap_or(f64::NAN),
                r["verify_ms"].as_f64().unwrap_or(f64::NAN),
            );
            let imp = r["impl"].as_str().unwrap_or("argon2-cffi").to_owned();
            table.add(
                "argon2id hash, C reference",
                format!("{ch:.2}"),
                "ms",
                "",
                format!("{imp} (libargon2), same parameters, same run"),
            );
            table.add(
                "argon2id verify, C reference",
                format!("{cv:.2}"),
                "ms",
                "",
                format!("{imp}, same run"),
            );
            table.add(
                "argon2id hash, ratio ours / C",
                format!("{:.2}", rh / ch),
                "x",
                "<= 1.2",
                "",
            );
            table.add(
                "argon2id verify, ratio ours / C",
                format!("{:.2}", rv / cv),
                "x",
                "<= 1.2",
                "",
            );
        }
        None => table.add(
            "argon2id C reference",
            "not run",
            "",
            "",
            "argon2-cffi missing from .venv (scripts/bench installs it)",
        ),
    }
}
