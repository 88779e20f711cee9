//! The list of commonly used passwords new passwords are checked against (NIST SP 800-63B
//! §5.1.1.2), shipped in the binary so the check is offline and fast.

use std::{collections::HashSet, sync::LazyLock};

static LIST: &str = include_str!("../../data/common-passwords.txt");

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    LIST.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// True when `password`, compared case-insensitively, is on the list.
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    COMMON.contains(lower.as_str())
}

/// Entries on the list (for docs and tests).
pub fn len() -> usize {
    COMMON.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_holds_over_ten_thousand_passwords_of_eight_or_more_characters() {
        assert!(super::len() > 10_000, "{}", super::len());
        assert!(
            super::LIST
                .lines()
                .filter(|l| !l.starts_with('#'))
                .all(|l| l.chars().count() >= 8)
        );
    }
}
