//! Subjects and bodies of the mail this service sends, per kind and locale. Built-in English
//! texts serve when nothing else matches; `EMAIL_TEMPLATES` adds or replaces texts:
//! `{"<locale>": {"<kind>": {"subject": "...", "text": "...", "html": "..."}}}` with kinds
//! `verify`, `change`, `recover`, `exists`, and placeholders `{code}`, `{link}`, `{minutes}`
//! (in HTML the values are escaped). A request picks the locale by a `locale` field or its
//! `Accept-Language` header: the first tag with texts, by full tag then by language.

use std::collections::HashMap;

use serde::Deserialize;

use super::Message;

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// Proving the address of a new account.
    Verify,
    /// Proving a new address for an existing account.
    Change,
    /// A password reset.
    Recover,
    /// Someone tried to sign up with an address that already has an account (sent instead of
    /// telling the one signing up).
    Exists,
    /// An operator removed the account's second factors (a notice: no code, no link).
    FactorsReset,
}

impl MailKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Change => "change",
            Self::Recover => "recover",
            Self::Exists => "exists",
            Self::FactorsReset => "factors_reset",
        }
    }

    /// A notice carries no code and no link.
    pub const fn is_notice(self) -> bool {
        matches!(self, Self::Exists | Self::FactorsReset)
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Self::Verify,
            Self::Change,
            Self::Recover,
            Self::Exists,
            Self::FactorsReset,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// One text: subject, plain body and HTML body, with placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The values a message is filled with.
#[derive(Debug, Clone, Copy)]
pub struct Fill<'a> {
    pub code: &'a str,
    pub link: &'a str,
    pub minutes: i64,
}

/// Texts by locale (lower-case tag) and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates(HashMap<String, HashMap<MailKind, Template>>);

fn builtin(kind: MailKind) -> Template {
    let (subject, lead, action) = match kind {
        MailKind::Verify => (
            "Confirm your email address",
            "Welcome! Confirm this address with the code {code}",
            "or open this link",
        ),
        MailKind::Change => (
            "Confirm your new email address",
            "Confirm your new address with the code {code}",
            "or open this link",
        ),
        MailKind::Recover => (
            "Reset your password",
            "Your password reset code is {code}",
            "or open this link to choose a new password",
        ),
        MailKind::Exists => (
            "Someone tried to sign up with your address",
            "Someone (perhaps you) tried to make a new account with this address, which already has one. Nothing changed",
            "if it was you, log in, or reset your password with a code sent from the login page",
        ),
        MailKind::FactorsReset => (
            "Your two-step verification was reset",
            "Support removed the second factors (authenticator app, passkeys, recovery codes) of your account and signed you out everywhere",
            "if you did not ask for this, reset your password and contact support now",
        ),
    };
    let text = if kind.is_notice() {
        format!("{lead}; {action}.")
    } else {
        format!(
            "{lead}, {action}: {{link}}\n\nBoth expire in {{minutes}} minutes and work once. If you did not ask for this, ignore this message."
        )
    };
    let html = if kind.is_notice() {
        format!("<p>{lead}; {action}.</p>")
    } else {
        format!(
            "<p>{lead}, <a href=\"{{link}}\">{action}</a>.</p><p>Both expire in {{minutes}} minutes and work once. If you did not ask for this, ignore this message.</p>"
        )
    };
    Template {
        subject: subject.to_owned(),
        text,
        html,
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fill(text: &str, f: Fill<'_>, escape: bool) -> String {
    let e = |s: &str| if escape { escape_html(s) } else { s.to_owned() };
    text.replace("{code}", &e(f.code))
        .replace("{link}", &e(f.link))
        .replace("{minutes}", &f.minutes.to_string())
}

impl Templates {
    /// Parses `EMAIL_TEMPLATES`; the reason names what is wrong, never a text.
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: HashMap<String, HashMap<String, Template>> =
            serde_json::from_str(json).map_err(|e| format!("not the expected JSON: {e}"))?;
        let mut out = HashMap::new();
        for (locale, kinds) in raw {
            let mut by_kind = HashMap::new();
            for (name, t) in kinds {
                let kind = MailKind::from_name(&name)
                    .ok_or_else(|| format!("unknown kind {name:?} under {locale:?}"))?;
                if !(kind.is_notice() || t.text.contains("{code}") || t.text.contains("{link}")) {
                    return Err(format!(
                        "{locale}/{name}: the text names neither {{code}} nor {{link}}"
                    ));
                }
                by_kind.insert(kind, t);
            }
            out.insert(locale.to_ascii_lowercase(), by_kind);
        }
        Ok(Self(out))
    }

    /// The locale tags to try for a request, best first: `locale` if given, then the
    /// `Accept-Language` tags in order of preference.
    pub fn preferences(locale: Option<&str>, accept_language: Option<&str>) -> Vec<String> {
        let mut tags: Vec<(f32, usize, String)> = accept_language
            .unwrap_or_default()
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut bits = part.split(';');
                let tag = bits.next()?.trim().to_ascii_lowercase();
                let q = bits
                    .find_map(|b| b.trim().strip_prefix("q=").and_then(|q| q.parse().ok()))
                    .unwrap_or(1.0_f32);
                (!tag.is_empty() && tag != "*" && q > 0.0).then_some((q, i, tag))
            })
            .collect();
        tags.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        locale
            .map(str::to_ascii_lowercase)
            .into_iter()
            .chain(tags.into_iter().map(|(_, _, t)| t))
            .collect()
    }

    /// The message of `kind` for the first preferred locale with a text for it (by full tag,
    /// then by language), else English, else the built-in text.
    pub fn render(&self, kind: MailKind, preferences: &[String], f: Fill<'_>) -> Message {
        let find = |tag: &str| self.0.get(tag).and_then(|k| k.get(&kind));
        let chosen = preferences
            .iter()
            .find_map(|t| find(t).or_else(|| find(t.split('-').next().unwrap_or(t))))
            .or_else(|| find("en"))
            .cloned()
            .unwrap_or_else(|| builtin(kind));
        Message {
            subject: fill(&chosen.subject, f, false),
            text: fill(&chosen.text, f, false),
            html: fill(&chosen.html, f, true),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const F: Fill<'static> = Fill {
        code: "123456",
        link: "https://app.example/verify?token=abc&x=1",
        minutes: 10,
    };

    #[test]
    fn the_builtin_text_carries_the_code_the_link_and_the_lifetime() {
        let m = Templates::default().render(MailKind::Verify, &[], F);
        assert!(
            m.text.contains("123456") && m.text.contains(F.link) && m.text.contains("10 minutes")
        );
        assert!(m.html.contains("token=abc&amp;x=1"), "{}", m.html);
    }

    #[test]
    fn a_locale_field_then_accept_language_choose_the_text() {
        let t = Templates::parse(
            r#"{"de": {"verify": {"subject": "Bestätigen", "text": "Code {code}", "html": "<p>{code}</p>"}},
                "pt-BR": {"verify": {"subject": "Confirme", "text": "Código {code}", "html": "{link}"}}}"#,
        )
        .unwrap();
        let subject = |locale: Option<&str>, accept: Option<&str>| {
            t.render(MailKind::Verify, &Templates::preferences(locale, accept), F)
                .subject
        };
        assert_eq!(subject(Some("de"), Some("pt-BR")), "Bestätigen");
        assert_eq!(subject(None, Some("fr;q=0.9, pt-BR, de;q=0.5")), "Confirme");
        assert_eq!(subject(None, Some("de-AT")), "Bestätigen", "by language");
        assert_eq!(subject(None, Some("fr")), "Confirm your email address");
        assert_eq!(subject(None, None), "Confirm your email address");
        // Recover has no German text: the built-in one.
        let prefs = Templates::preferences(Some("de"), None);
        assert_eq!(
            t.render(MailKind::Recover, &prefs, F).subject,
            "Reset your password"
        );
    }

    #[test]
    fn templates_without_a_code_or_link_or_of_unknown_kinds_are_refused() {
        for bad in [
            r#"{"en": {"verify": {"subject": "s", "text": "no placeholder", "html": "h"}}}"#,
            r#"{"en": {"welcome": {"subject": "s", "text": "{code}", "html": "h"}}}"#,
            r#"{"en": {"verify": {"subject": "s", "text": "{code}"}}}"#,
            "not json",
        ] {
            assert!(Templates::parse(bad).is_err(), "{bad}");
        }
    }
}
