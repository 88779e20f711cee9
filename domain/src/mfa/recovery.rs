//! Recovery codes: ten single-use look-up secrets for a user who lost every other factor.
//! Each is 12 characters of Crockford base32 (60 bits), shown once as `xxxx-xxxx-xxxx`, and
//! stored only as an argon2id hash (NIST SP 800-63B: a look-up secret under 112 bits is
//! stored salted and hashed with a password-hashing scheme). The first two characters are
//! kept in clear beside each hash as a tag, so a code presented is checked against the one
//! hash it can match, not ten (a dump then leaves 50 bits per code to find, at argon2's cost).
//! Typing is forgiving: case, spaces and dashes are ignored, and `i`/`l` read as `1`, `o` as
//! `0`.

// At least 50 bits per code (issue 25): 5 bits per character.
const _: () = assert!(CHARS * 5 >= 50);

/// Codes in a set.
pub const COUNT: usize = 10;
/// Characters in a code (5 bits each).
pub const CHARS: usize = 12;
/// Characters of a code kept in clear as its tag.
const TAG_CHARS: usize = 2;
/// Crockford's base32: no `i`, `l`, `o`, `u`.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Separator of stored entries.
const SEPARATOR: char = ';';

/// One recovery code, canonical (lower case, no separators).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

impl RecoveryCode {
    /// A code as typed; `None` unless it is 12 characters of the alphabet once separators
    /// are dropped and look-alikes mapped.
    pub fn parse(raw: &str) -> Option<Self> {
        let code: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| match c.to_ascii_lowercase() {
                'i' | 'l' => '1',
                'o' => '0',
                c => c,
            })
            .collect();
        (code.len() == CHARS && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(Self(code))
    }

    /// As shown to the user: `xxxx-xxxx-xxxx`.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[..4], &self.0[4..8], &self.0[8..])
    }

    /// The canonical text, for the hash.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The part kept in clear beside the hash.
    pub fn tag(&self) -> &str {
        &self.0[..TAG_CHARS]
    }
}

/// A fresh set of [`COUNT`] distinct codes.
pub fn generate() -> Result<Vec<RecoveryCode>, getrandom::Error> {
    let mut codes: Vec<RecoveryCode> = Vec::with_capacity(COUNT);
    while codes.len() < COUNT {
        let mut bytes = [0u8; CHARS];
        getrandom::fill(&mut bytes)?;
        // 32 divides 256: the low five bits of a uniform byte are uniform.
        let code: String = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        let code = RecoveryCode(code);
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// The stored set: `(tag, argon2 PHC string)` for each code not yet used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredCodes(pub Vec<(String, String)>);

impl StoredCodes {
    /// Reads the stored text (`tag` + PHC string, `;`-separated; a PHC string begins with `$`
    /// and holds no `;`).
    pub fn parse(stored: &str) -> Self {
        Self(
            stored
                .split(SEPARATOR)
                .filter_map(|e| {
                    let at = e.find('$')?;
                    Some((e[..at].to_owned(), e[at..].to_owned()))
                })
                .collect(),
        )
    }

    /// The text to store.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|(tag, phc)| format!("{tag}{phc}"))
            .collect::<Vec<_>>()
            .join(&SEPARATOR.to_string())
    }

    /// Codes left.
    pub fn remaining(&self) -> usize {
        self.0.len()
    }

    /// The entries `code` could be, by tag: their indexes and hashes.
    pub fn candidates<'a>(
        &'a self,
        code: &'a RecoveryCode,
    ) -> impl Iterator<Item = (usize, &'a str)> + 'a {
        self.0
            .iter()
            .enumerate()
            .filter(move |(_, (tag, _))| tag == code.tag())
            .map(|(i, (_, phc))| (i, phc.as_str()))
    }

    /// The set without entry `index` (a code used).
    #[must_use]
    pub fn without(&self, index: usize) -> Self {
        let mut rest = self.0.clone();
        if index < rest.len() {
            rest.remove(index);
        }
        Self(rest)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_codes_of_sixty_bits_that_parse_as_typed() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        for c in &codes {
            let shown = c.display();
            assert_eq!(shown.len(), 14);
            assert_eq!(RecoveryCode::parse(&shown).as_ref(), Some(c));
            assert_eq!(
                RecoveryCode::parse(&format!(" {} ", shown.to_uppercase())).as_ref(),
                Some(c)
            );
            assert!(!format!("{c:?}").contains(c.expose()));
        }
        assert_eq!(
            RecoveryCode::parse("IL0O-abcd-efgh").map(|c| c.0),
            Some("1100abcdefgh".to_owned())
        );
        for bad in [
            "",
            "abcd-efgh-jkm",
            "abcd-efgh-jkmnp",
            "abcd-efgh-jkmu",
            "abcd-efgh-jk!n",
        ] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_stored_set_round_trips_and_finds_a_code_by_its_tag() {
        let set = StoredCodes(vec![
            (
                "ab".into(),
                "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA".into(),
            ),
            (
                "cd".into(),
                "$argon2id$v=19$m=1,t=1,p=1$c2FsdB$aGFzaB".into(),
            ),
        ]);
        let text = set.to_stored();
        assert_eq!(StoredCodes::parse(&text), set);
        let code = RecoveryCode::parse("cd00-0000-0000").unwrap();
        let found: Vec<usize> = set.candidates(&code).map(|(i, _)| i).collect();
        assert_eq!(found, [1]);
        assert_eq!(set.without(1).remaining(), 1);
        assert_eq!(StoredCodes::parse("").remaining(), 0);
    }
}
