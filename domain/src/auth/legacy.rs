//! Password hashes this service did not make: what an import brings from the Flask service
//! (Werkzeug's `pbkdf2:<hash>:<iterations>$salt$hex` and `scrypt:N:r:p$salt$hex`), from
//! bcrypt-based systems (`$2a$`, `$2b$`, `$2y$`) and argon2 at any parameters. Such a hash
//! verifies as it is; the first successful login replaces it with argon2id at the configured
//! parameters (`needs_rehash` says true for all of them).
//!
//! Parameters are bounded: a hash is only ever written by an operator's import, but a typo'd
//! or hostile file must not make a login take minutes or allocate gigabytes.

/// The most work accepted from a stored hash's own parameters.
pub mod limits {
    /// argon2 memory, KiB (256 MiB).
    pub const ARGON2_MAX_M_KIB: u32 = 262_144;
    /// argon2 passes.
    pub const ARGON2_MAX_T: u32 = 16;
    /// argon2 lanes.
    pub const ARGON2_MAX_P: u32 = 16;
    /// bcrypt cost (2^16 rounds, about 5 s).
    pub const BCRYPT_MAX_COST: u32 = 16;
    /// PBKDF2 iterations (Werkzeug 3.1 writes 1,000,000).
    pub const PBKDF2_MAX_ITERATIONS: u32 = 5_000_000;
    /// scrypt memory, 128 * N * r bytes (256 MiB; Werkzeug's default N=2^15, r=8 is 32 MiB).
    pub const SCRYPT_MAX_BYTES: u64 = 256 << 20;
    /// scrypt parallelism.
    pub const SCRYPT_MAX_P: u32 = 16;
}

/// A recognised hash format, with what verifying it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `$argon2id$`, `$argon2i$`, `$argon2d$` PHC strings (verified in `password`).
    Argon2,
    /// `$2a$`, `$2b$`, `$2y$` with its cost.
    Bcrypt,
    /// Werkzeug `pbkdf2:sha256:<iterations>$salt$hex` (or sha512).
    WerkzeugPbkdf2 {
        sha512: bool,
        iterations: u32,
        salt: String,
        expected: Vec<u8>,
    },
    /// Werkzeug `scrypt:<N>:<r>:<p>$salt$hex` (64-byte output).
    WerkzeugScrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: String,
        expected: Vec<u8>,
    },
}

/// Why a stored string is not a hash this service can verify. Never contains the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub &'static str);

/// Werkzeug's default iteration count when a `pbkdf2` string names none (3.1).
const WERKZEUG_DEFAULT_ITERATIONS: u32 = 1_000_000;

impl Scheme {
    /// Recognises `stored` by its prefix and checks its parameters are within [`limits`].
    pub fn of(stored: &str) -> Result<Self, Unsupported> {
        if stored.starts_with("$argon2") {
            return argon2_within_limits(stored).map(|()| Self::Argon2);
        }
        if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            return bcrypt_cost(stored).map(|_| Self::Bcrypt);
        }
        if let Some(rest) = stored.strip_prefix("pbkdf2:") {
            return werkzeug_pbkdf2(rest);
        }
        if let Some(rest) = stored.strip_prefix("scrypt:") {
            return werkzeug_scrypt(rest);
        }
        Err(Unsupported("unrecognised password hash format"))
    }

    /// Verifies `password` (UTF-8 bytes) against a non-argon2 scheme; argon2 is `password`'s.
    pub fn verify_legacy(&self, password: &[u8], stored: &str) -> bool {
        match self {
            Self::Argon2 => false,
            Self::Bcrypt => bcrypt::verify(password, stored).unwrap_or(false),
            Self::WerkzeugPbkdf2 {
                sha512,
                iterations,
                salt,
                expected,
            } => {
                let mut out = vec![0u8; expected.len()];
                if *sha512 {
                    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut out,
                    );
                } else {
                    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut out,
                    );
                }
                super::constant_time_eq(&out, expected)
            }
            Self::WerkzeugScrypt {
                log_n,
                r,
                p,
                salt,
                expected,
            } => {
                let Ok(params) = scrypt::Params::new(*log_n, *r, *p, expected.len()) else {
                    return false;
                };
                let mut out = vec![0u8; expected.len()];
                scrypt::scrypt(password, salt.as_bytes(), &params, &mut out).is_ok()
                    && super::constant_time_eq(&out, expected)
            }
        }
    }
}

fn argon2_within_limits(stored: &str) -> Result<(), Unsupported> {
    use argon2::{Params, password_hash::phc::PasswordHash};
    let hash = PasswordHash::new(stored).map_err(|_| Unsupported("malformed argon2 hash"))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(Unsupported("argon2 hash without salt or output"));
    }
    let p = Params::try_from(&hash).map_err(|_| Unsupported("argon2 parameters out of range"))?;
    if p.m_cost() > limits::ARGON2_MAX_M_KIB
        || p.t_cost() > limits::ARGON2_MAX_T
        || p.p_cost() > limits::ARGON2_MAX_P
    {
        return Err(Unsupported("argon2 parameters above this service's limits"));
    }
    Ok(())
}

fn bcrypt_cost(stored: &str) -> Result<u32, Unsupported> {
    // `$2b$12$` + 53 characters of salt and hash.
    let cost = stored
        .get(4..6)
        .and_then(|c| c.parse::<u32>().ok())
        .filter(|_| stored.len() == 60 && stored.as_bytes().get(6) == Some(&b'$'))
        .ok_or(Unsupported("malformed bcrypt hash"))?;
    if !(4..=limits::BCRYPT_MAX_COST).contains(&cost) {
        return Err(Unsupported("bcrypt cost out of range"));
    }
    Ok(cost)
}

/// `method-args$salt$hex`.
fn salt_and_hex(rest: &str) -> Result<(&str, String, Vec<u8>), Unsupported> {
    let mut parts = rest.split('$');
    let (Some(args), Some(salt), Some(hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Unsupported("malformed Werkzeug hash"));
    };
    let bytes = decode_hex(hex).ok_or(Unsupported("malformed Werkzeug hash"))?;
    if salt.is_empty() || bytes.is_empty() {
        return Err(Unsupported("malformed Werkzeug hash"));
    }
    Ok((args, salt.to_owned(), bytes))
}

fn werkzeug_pbkdf2(rest: &str) -> Result<Scheme, Unsupported> {
    let (args, salt, expected) = salt_and_hex(rest)?;
    let mut args = args.split(':');
    let sha512 = match args.next() {
        Some("sha256") => false,
        Some("sha512") => true,
        _ => return Err(Unsupported("Werkzeug pbkdf2 with an unsupported digest")),
    };
    let iterations = match args.next() {
        None => WERKZEUG_DEFAULT_ITERATIONS,
        Some(n) => n
            .parse::<u32>()
            .map_err(|_| Unsupported("malformed Werkzeug hash"))?,
    };
    if args.next().is_some() || !(1..=limits::PBKDF2_MAX_ITERATIONS).contains(&iterations) {
        return Err(Unsupported("Werkzeug pbkdf2 parameters out of range"));
    }
    Ok(Scheme::WerkzeugPbkdf2 {
        sha512,
        iterations,
        salt,
        expected,
    })
}

fn werkzeug_scrypt(rest: &str) -> Result<Scheme, Unsupported> {
    let (args, salt, expected) = salt_and_hex(rest)?;
    let nums: Vec<u64> = if args.is_empty() {
        vec![1 << 15, 8, 1]
    } else {
        args.split(':')
            .map(|s| s.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| Unsupported("malformed Werkzeug hash"))?
    };
    let [n, r, p] = nums[..] else {
        return Err(Unsupported("malformed Werkzeug hash"));
    };
    let out_of_range = Unsupported("Werkzeug scrypt parameters out of range");
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 || p > u64::from(limits::SCRYPT_MAX_P) {
        return Err(out_of_range);
    }
    if n.saturating_mul(r).saturating_mul(128) > limits::SCRYPT_MAX_BYTES {
        return Err(out_of_range);
    }
    let (Ok(log_n), Ok(r), Ok(p)) = (
        u8::try_from(n.trailing_zeros()),
        u32::try_from(r),
        u32::try_from(p),
    ) else {
        return Err(out_of_range);
    };
    scrypt::Params::new(log_n, r, p, expected.len()).map_err(|_| out_of_range)?;
    Ok(Scheme::WerkzeugScrypt {
        log_n,
        r,
        p,
        salt,
        expected,
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let h = hex.as_bytes();
    if !h.len().is_multiple_of(2) {
        return None;
    }
    h.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by Werkzeug 3.1.9's generate_password_hash("securepassword123", ...).
    const PBKDF2_SHA256: &str = "pbkdf2:sha256:1000$quN2PEPVmKAV1vaL$c0b5f2179d6bf052d1182e22bbb156413738185c6bab8dfcdc8351d7dd275103";
    const PBKDF2_SHA512: &str = "pbkdf2:sha512:1000$54p6IKECBCheYsKy$5902c15fa8ad9fdd7d5dac25e37b33bd912c8efdb6f3de84fd5b3929a209479aaf8ce0e814e10cca495f08ab8cf4617a79ddd2f58364a1296a85df58a541854f";
    const SCRYPT_SMALL: &str = "scrypt:1024:8:1$5OnhKoOYGl4vZNEl$dd6fb47cb1d4b09281c5aa11c28c0d76a2fd2d6b6ade59209277253113186f4823edf059328c7499f377236e07a07efa28b185bff0d1c0d30ec869316a251bdf";
    // PHP's documented password_hash example: "rasmuslerdorf".
    const BCRYPT_2Y: &str = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";

    fn ok(stored: &str, pw: &str) -> bool {
        Scheme::of(stored).is_ok_and(|s| s.verify_legacy(pw.as_bytes(), stored))
    }

    #[test]
    fn werkzeug_hashes_verify_with_the_right_password_only() {
        for h in [PBKDF2_SHA256, PBKDF2_SHA512, SCRYPT_SMALL] {
            assert!(ok(h, "securepassword123"), "{h}");
            assert!(!ok(h, "securepassword124"), "{h}");
        }
    }

    #[test]
    fn bcrypt_variants_verify() {
        assert!(ok(BCRYPT_2Y, "rasmuslerdorf"));
        assert!(!ok(BCRYPT_2Y, "rasmuslerdorF"));
        for prefix in ["$2a$", "$2b$"] {
            let h = format!("{prefix}{}", &BCRYPT_2Y[4..]);
            assert!(ok(&h, "rasmuslerdorf"), "{h}");
        }
    }

    #[test]
    fn unknown_malformed_and_too_costly_hashes_are_refused() {
        for bad in [
            "",
            "plaintext",
            "md5$abc$def",
            "pbkdf2:sha1:1000$salt$00",
            "pbkdf2:sha256:99999999$salt$00",
            "pbkdf2:sha256:1000$salt$zz",
            "pbkdf2:sha256:1000$$00",
            "scrypt:1048576:8:1$salt$00",
            "scrypt:1000:8:1$salt$00",
            "scrypt:1024:8$salt$00",
            "$2b$31$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
            "$2b$10$short",
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1",
        ] {
            assert!(Scheme::of(bad).is_err(), "{bad:?} accepted");
        }
    }
}
