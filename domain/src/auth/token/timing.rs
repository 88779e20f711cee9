use super::*;
use crate::config::KeyVersion;

/// This thread's on-CPU time in ns (Linux schedstat; updated at scheduler ticks, so only
/// loops of tens of milliseconds are timed), so other work on a shared machine does not
/// inflate the figures.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_default()
}

/// Issue and warm verification cost per token (`cargo test -p shared --release --lib
/// warm_verify -- --ignored --nocapture`); the figures are in bench/RESULTS.md.
#[test]
#[ignore = "a measurement, not a check"]
fn warm_verify_cost() {
    let rsa = RsaKey::parse(include_str!("../../../../tests/fixtures/rsa-a.pem"));
    let Ok(rsa) = rsa else { return };
    let session = Secret::new(b"0123456789abcdef0123456789abcdef".to_vec());
    for (name, jwt) in [
        ("RS256", JwtKey::Rs256(Arc::new(rsa))),
        ("HS256", JwtKey::Hs256(session.clone())),
    ] {
        let set = KeySet {
            current: KeyVersion {
                kid: "k".into(),
                jwt,
                session: session.clone(),
            },
            previous: None,
            next: None,
        };
        let keys = TokenKeys::new(&set, "aud", Duration::from_secs(900));
        let now = 1_800_000_000;
        let (issues, verifies) = (200u64, 4000u64);
        let start = cpu_ns();
        let tokens: Vec<String> = (0..issues)
            .map(|_| {
                keys.issue("iss", &UserId::new(), "s", now)
                    .unwrap_or_default()
            })
            .collect();
        let issue_ns = (cpu_ns() - start) / issues;
        // First sight of each token: the memory of verified tokens emptied every pass.
        let start = cpu_ns();
        for i in 0..verifies {
            if i % issues == 0 {
                keys.verified
                    .lock()
                    .map(|mut m| m.clear())
                    .unwrap_or_default();
            }
            let t = &tokens[(i % issues) as usize];
            assert!(keys.verify(t, now, "iss").is_ok());
        }
        let first_ns = (cpu_ns() - start) / verifies;
        // A token seen before, as with a client's every request after its first.
        let start = cpu_ns();
        for i in 0..verifies {
            let t = &tokens[(i % issues) as usize];
            assert!(keys.verify(t, now, "iss").is_ok());
        }
        let repeat_ns = (cpu_ns() - start) / verifies;
        println!(
            "{name}: issue {:.1} us, verify first seen {:.1} us, repeat {:.1} us (CPU time per token)",
            issue_ns as f64 / 1e3,
            first_ns as f64 / 1e3,
            repeat_ns as f64 / 1e3
        );
    }
}
