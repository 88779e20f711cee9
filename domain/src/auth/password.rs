//! argon2id password hashing with OWASP parameters, off the async threads.
//!
//! Each hash or verify needs 19 MiB of working memory, so concurrency is what costs memory: the
//! async entry points take a permit from a semaphore sized to the cores before they reach the
//! blocking pool, and at most that many buffers are pooled. Forty concurrent logins on the dev
//! server once held forty buffers (865 MB resident, never returned); now they queue for the
//! cores, which is all the CPU there is anyway.

use std::sync::{LazyLock, Mutex, PoisonError};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};

use tokio::sync::Semaphore;

use super::legacy::Scheme;
use crate::types::Password;

/// Why a hash could not be made or checked: the machinery failed (no permit, a panicked
/// task, no randomness). A wrong password is not an error (`verify` answers false). This
/// layer's own type: the service turns it into its internal error.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PasswordError(String);

type Error = PasswordError;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19_456;
/// Passes over memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// A valid hash at the parameters above of a password nobody knows. Verifying it costs what a
/// real verify costs, so a login for an unknown phone takes as long as one with a wrong password.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$aW1wb3NzaWJsZS1zYWx0$Zxo5N8dPz1pIF4x2lDCs3Yc4d6YTp4r0T7m1l2bVb1k";

fn params() -> Params {
    // The constants above are within argon2's limits, so `Params::new` cannot fail here;
    // the default is the same OWASP set should that ever change.
    Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default()
}

/// How many argon2 computations may run at once through [`hash`] and [`verify`]: one per core
/// (`std::thread::available_parallelism`, which honours CPU affinity and cgroup quotas), since
/// more cannot run faster and each holds 19 MiB.
pub fn max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Permits for argon2 work, taken before `spawn_blocking` so waiting requests hold no thread
/// and no buffer. A Lambda instance has one blocking thread (`lambda_runtime`), so it still
/// runs one hash at a time whatever this says.
static PERMITS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(max_concurrent()));

/// argon2's 19 MiB working memory, kept for reuse. Allocating it per hash leaves glibc
/// holding a fresh 19 MiB after every request (a freed block this size goes back to the heap,
/// not to the OS, once glibc's mmap threshold has grown past it), so buffers are reused and
/// never more than [`max_concurrent`] are kept: with the permits above, that is also the most
/// that ever exist at once. A Lambda instance keeps one.
static BUFFERS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

fn with_memory<R>(blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
    let pooled = BUFFERS.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let mut buffer = pooled.unwrap_or_default();
    if buffer.len() < blocks {
        buffer.resize(blocks, Block::default());
    }
    let result = f(&mut buffer[..blocks]);
    let mut pool = BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
    // Callers of the `_blocking` functions take no permit; what they add beyond the cap is
    // freed here rather than kept, as is a buffer grown past the configured size by an
    // imported hash at other parameters.
    if pool.len() < max_concurrent() && buffer.len() <= params().block_count() {
        pool.push(buffer);
    }
    result
}

/// Runs `f` on the blocking pool once a permit is free; the permit moves into the blocking
/// task, so a request whose client went away still counts until its argon2 work ends.
async fn limited<R: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Error> {
    let permit = PERMITS
        .acquire()
        .await
        .map_err(|e| internal("argon2 permit", e))?;
    tokio::task::spawn_blocking(move || {
        let result = f();
        drop(permit);
        result
    })
    .await
    .map_err(|e| internal(what, e))
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    PasswordError(format!("{what}: {e}"))
}

/// Hashes to a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) on the blocking pool.
pub async fn hash(password: Password) -> Result<String, Error> {
    limited("password hashing task", move || hash_blocking(&password)).await?
}

/// The synchronous hash, for benches and the blocking pool.
pub fn hash_blocking(password: &Password) -> Result<String, Error> {
    let params = params();
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| internal("salt generation", e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_memory(params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password.expose(), &salt, &mut out, blocks)
    })
    .map_err(|e| internal("password hashing", e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13 as u32),
        params: ParamsString::try_from(&params).map_err(|e| internal("PHC params", e))?,
        salt: Some(Salt::new(&salt).map_err(|e| internal("PHC salt", e))?),
        hash: Some(Output::new(&out).map_err(|e| internal("PHC output", e))?),
    };
    Ok(phc.to_string())
}

/// Verifies `password` against `phc`, or against [`DUMMY_HASH`] when there is no user, so both
/// paths cost one argon2 verify. Returns true only for a real hash that matches.
pub async fn verify(password: Password, phc: Option<String>) -> Result<bool, Error> {
    limited("password verify task", move || {
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = verify_blocking(&password, &phc);
        real && ok
    })
    .await
}

/// The synchronous verify, by the stored hash's format (argon2 here; imported bcrypt and
/// Werkzeug formats in `legacy`), at the parameters it names. A malformed, unknown or
/// too-costly stored hash verifies as false.
pub fn verify_blocking(password: &Password, stored: &str) -> bool {
    match Scheme::of(stored) {
        Ok(Scheme::Argon2) => verify_argon2(password, stored),
        Ok(legacy) => legacy.verify_legacy(password.expose(), stored),
        Err(_) => false,
    }
}

fn verify_argon2(password: &Password, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        Params::try_from(&hash),
    ) else {
        return false;
    };
    let Ok(version) = Version::try_from(hash.version.unwrap_or(Version::V0x13 as u32)) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = with_memory(params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password.expose(), salt, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| &o == expected)
}

/// True when `phc` was made with other (older) parameters than the configured ones, so a
/// successful login should store a fresh hash.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    let current = Params::try_from(&hash).ok();
    hash.algorithm.as_str() != "argon2id"
        || hash.version != Some(Version::V0x13 as u32)
        || current.is_none_or(|p| {
            p.m_cost() != M_COST_KIB || p.t_cost() != T_COST || p.p_cost() != P_COST
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::new(s.to_owned()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hash_is_argon2id_phc_with_owasp_parameters_and_verifies() {
        let h = hash_blocking(&pw("correct horse battery")).unwrap_or_default();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking(&pw("correct horse battery"), &h));
        assert!(!verify_blocking(&pw("correct horse battery!"), &h));
    }

    #[test]
    fn hashes_interoperate_with_the_crates_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_blocking(&pw("correct horse battery")).unwrap_or_default();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        assert!(
            argon2
                .verify_password(b"correct horse battery", ours.as_str())
                .is_ok()
        );
        let theirs = argon2
            .hash_password(b"correct horse battery")
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(verify_blocking(&pw("correct horse battery"), &theirs));
        assert!(!verify_blocking(&pw("correct horse batteries"), &theirs));
    }

    #[test]
    fn dummy_hash_uses_the_configured_parameters_and_is_well_formed() {
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let parsed = argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn hashes_at_older_parameters_need_a_rehash_and_current_ones_do_not() {
        let current = hash_blocking(&pw("correct horse battery")).unwrap_or_default();
        assert!(!needs_rehash(&current));
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap_or_default(),
        );
        use argon2::password_hash::PasswordHasher;
        let old = weak
            .hash_password(b"correct horse battery")
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(needs_rehash(&old), "{old}");
        assert!(needs_rehash("not a hash"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hashes_all_finish_and_pool_at_most_one_buffer_per_core() {
        let n = max_concurrent();
        let tasks: Vec<_> = (0..4 * n + 4)
            .map(|i| tokio::spawn(hash(pw(&format!("correct horse battery {i}")))))
            .collect();
        for t in tasks {
            let h = t
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_default();
            assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        }
        let pooled = BUFFERS.lock().unwrap_or_else(PoisonError::into_inner).len();
        assert!(pooled <= n, "{pooled} buffers pooled for {n} cores");
    }

    #[tokio::test]
    async fn verify_without_a_user_is_false_even_for_any_password() {
        assert_eq!(verify(pw("whatever123"), None).await.ok(), Some(false));
    }
}
