//! argon2id password hashing with OWASP parameters, off the async threads.

use argon2::{Algorithm, Argon2, Params, Version, password_hash::PasswordVerifier};

use crate::{error::ApiError, types::Password};

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19_456;
/// Passes over memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// A valid hash at the parameters above of a password nobody knows. Verifying it costs what a
/// real verify costs, so a login for an unknown phone takes as long as one with a wrong password.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$aW1wb3NzaWJsZS1zYWx0$Zxo5N8dPz1pIF4x2lDCs3Yc4d6YTp4r0T7m1l2bVb1k";

fn hasher() -> Argon2<'static> {
    // The constants above are within argon2's limits, so `Params::new` cannot fail here;
    // the default is the same OWASP set should that ever change.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes to a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) on the blocking pool.
pub async fn hash(password: Password) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            ApiError::Internal
        })?
}

/// The synchronous hash, for benches and the blocking pool.
pub fn hash_blocking(password: &Password) -> Result<String, ApiError> {
    use argon2::password_hash::PasswordHasher;
    hasher()
        .hash_password(password.expose())
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ApiError::Internal
        })
}

/// Verifies `password` against `phc`, or against [`DUMMY_HASH`] when there is no user, so both
/// paths cost one argon2 verify. Returns true only for a real hash that matches.
pub async fn verify(password: Password, phc: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = verify_blocking(&password, &phc);
        real && ok
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "password verify task failed");
        ApiError::Internal
    })
}

/// The synchronous verify. A malformed stored hash verifies as false.
pub fn verify_blocking(password: &Password, phc: &str) -> bool {
    hasher().verify_password(password.expose(), phc).is_ok()
}

/// True when `phc` was made with other (older) parameters than the configured ones, so a
/// successful login should store a fresh hash.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = argon2::password_hash::phc::PasswordHash::new(phc) else {
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
        Password::parse(s.to_owned(), "/password").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hash_is_argon2id_phc_with_owasp_parameters_and_verifies() {
        let h = hash_blocking(&pw("correct horse battery")).unwrap_or_default();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking(&pw("correct horse battery"), &h));
        assert!(!verify_blocking(&pw("correct horse battery!"), &h));
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

    #[tokio::test]
    async fn verify_without_a_user_is_false_even_for_any_password() {
        assert_eq!(verify(pw("whatever123"), None).await.ok(), Some(false));
    }
}
