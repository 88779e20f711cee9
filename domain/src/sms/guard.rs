//! The SMS cost guard as policy: which counters one send must reserve, with which limits and
//! windows, and whether the destination country is allowed at all. Pure and clock-free; the
//! store layer does the atomic counting.
//!
//! Why: every SMS costs money, and "SMS pumping" fraud makes an API send codes to premium
//! numbers in bulk. So a send is bounded per phone, per source address, per country calling
//! code and by a global daily budget, and countries outside `SMS_ALLOWED_COUNTRY_CODES` are
//! refused before anything is counted.
//!
//! How the flow applies a [`Plan`] (`service/verify.rs`), as one reservation:
//! 1. The [`Plan::budgets`] in order, cheapest and most specific first: the source address,
//!    the phone, the country calling code, the daily budget. The attempt limits (source,
//!    phone) are atomic conditional increments that count only within their limit; the cost
//!    budgets (country, daily: [`Budget::spends`]) are only looked at. The first refusal ends
//!    the request with 429, and every counter this request had reserved is given back: a
//!    request refused by any guard charges none of the others, so a throttled address cannot
//!    move a victim's per-phone counter.
//! 2. The [`Plan::claim`] (a once-only marker, unique key, expiring after `ttl_secs`). If it
//!    was already there, this is a retry of a request that already sent (or is sending) its
//!    SMS: give the budgets back, send nothing, answer as the first attempt did. Written only
//!    after the guards passed, so a refused request stores nothing.
//! 3. Send. The cost budgets are reserved (atomically, within their limits) right before an
//!    SMS goes out and given back if it fails: they count SMS actually sent. A request that
//!    sends nothing (no such account, a test number, a cooldown) never touches them, not
//!    even for the moment it is in flight, so floods of unknown numbers cannot drain them.
//!    Known and unknown phones are looked at alike, so the answer (429 or 202) never tells
//!    which exist.
//!
//! Windows are fixed (the window's index is part of the key), so at a boundary a client can
//! spend up to twice a limit within a short time; per-phone limits are small enough for that
//! not to matter, and the daily budget bounds the total.

use std::{collections::BTreeSet, net::IpAddr};

use crate::{config::Vars, types::Phone};

use super::settings::{SmsConfigError, count, invalid};

/// One hour, in seconds.
pub const HOUR: i64 = 3600;
/// One day, in seconds.
pub const DAY: i64 = 86_400;
/// How long a claimed idempotency key is remembered: longer than any retry of one request.
pub const CLAIM_TTL_SECS: i64 = DAY;

/// A counter one send must reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Counter key, including the window's index, e.g. `sms:phone:+12025550101:h:493452`.
    pub key: String,
    /// Most sends allowed in the window.
    pub limit: u32,
    /// Length of the window.
    pub window_secs: i64,
    /// Which guard this is (the reason a refusal names).
    pub guard: Guard,
}

/// The guards, in the order a send reserves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Per source address (IPv6 per /64).
    Source,
    /// Per destination phone.
    Phone,
    /// Per destination email address.
    Address,
    /// Per country calling code: SMS sent.
    Country,
    /// All SMS of one UTC day.
    Daily,
}

impl Guard {
    /// The reason word in audit lines (`sms_refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "ip",
            Self::Phone => "phone",
            Self::Address => "address",
            Self::Country => "cc",
            Self::Daily => "all",
        }
    }
}

impl Budget {
    /// Whether the counter counts SMS sent (cost), not attempts: given back when the request
    /// sends nothing.
    pub fn spends(&self) -> bool {
        matches!(self.guard, Guard::Country | Guard::Daily)
    }

    /// When the counter's window ends (Unix seconds): the counter can expire then.
    pub fn expires_at(&self, now: i64) -> i64 {
        (now.div_euclid(self.window_secs) + 1) * self.window_secs
    }
}

/// The once-only marker for one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `sms:once:<idempotency key>`.
    pub key: String,
    pub ttl_secs: i64,
}

/// What a send must do in the store before it goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub claim: Claim,
    pub budgets: Vec<Budget>,
}

/// Why a send is refused before any counter is touched.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// `calling_code` is `None` for a phone not checked as E.164 (read the legacy way), which
    /// no SMS may go to.
    #[error("SMS to country calling code {calling_code:?} is not allowed")]
    CountryNotAllowed { calling_code: Option<u16> },
    #[error("the idempotency key is empty, too long or not printable ASCII")]
    BadIdempotencyKey,
}

/// One send as the guard sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub phone: &'a Phone,
    /// The client's address as API Gateway saw it; `None` where there is none (tools).
    pub source_ip: Option<IpAddr>,
    /// Derived by the flow from the request id, see [`idempotency_key`].
    pub idempotency_key: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// A configured test number: nothing is sent, so only the attempt limits (phone, source)
    /// apply, not the cost budgets (country, daily).
    pub test_number: bool,
}

/// The limits, from variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// `SMS_PER_PHONE_PER_HOUR` (default 5).
    pub per_phone_per_hour: u32,
    /// `SMS_PER_IP_PER_HOUR` (default 10); IPv6 is counted per /64.
    pub per_ip_per_hour: u32,
    /// `SMS_PER_COUNTRY_PER_HOUR` (default 100): per country calling code.
    pub per_country_per_hour: u32,
    /// `SMS_DAILY_BUDGET` (default 1000): all SMS in one UTC day.
    pub daily_budget: u32,
    /// `SMS_ALLOWED_COUNTRY_CODES`, e.g. `1,44,49`; `None` (unset) allows every country, still
    /// bounded by the per-country limit.
    pub allowed_country_codes: Option<BTreeSet<u16>>,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            per_phone_per_hour: 5,
            per_ip_per_hour: 10,
            per_country_per_hour: 100,
            daily_budget: 1000,
            allowed_country_codes: None,
        }
    }
}

impl GuardSettings {
    /// Reads the limits; each must be a whole number above zero.
    pub fn from_vars(vars: &Vars) -> Result<Self, SmsConfigError> {
        let d = Self::default();
        Ok(Self {
            per_phone_per_hour: count(vars, "SMS_PER_PHONE_PER_HOUR", d.per_phone_per_hour)?,
            per_ip_per_hour: count(vars, "SMS_PER_IP_PER_HOUR", d.per_ip_per_hour)?,
            per_country_per_hour: count(vars, "SMS_PER_COUNTRY_PER_HOUR", d.per_country_per_hour)?,
            daily_budget: count(vars, "SMS_DAILY_BUDGET", d.daily_budget)?,
            allowed_country_codes: match vars.get("SMS_ALLOWED_COUNTRY_CODES") {
                None => None,
                Some(text) => Some(parse_codes(text)?),
            },
        })
    }

    /// Whether SMS may go to `phone`'s country: never to a phone without a known country
    /// (one not checked as E.164).
    pub fn allows(&self, phone: &Phone) -> bool {
        phone.calling_code().is_some_and(|code| {
            self.allowed_country_codes
                .as_ref()
                .is_none_or(|codes| codes.contains(&code))
        })
    }

    /// The claim and counters `attempt` must reserve, or why it is refused outright.
    pub fn plan(&self, attempt: &Attempt<'_>) -> Result<Plan, Refusal> {
        check_idempotency_key(attempt.idempotency_key)?;
        let calling_code = match attempt.phone.calling_code() {
            Some(code) if self.allows(attempt.phone) => code,
            calling_code => return Err(Refusal::CountryNotAllowed { calling_code }),
        };
        let hour = attempt.now.div_euclid(HOUR);
        let day = attempt.now.div_euclid(DAY);
        let mut budgets = Vec::with_capacity(4);
        if let Some(ip) = attempt.source_ip {
            budgets.push(Budget {
                key: format!("sms:ip:{}:h:{hour}", source_key(ip)),
                limit: self.per_ip_per_hour,
                window_secs: HOUR,
                guard: Guard::Source,
            });
        }
        budgets.push(Budget {
            key: format!("sms:phone:{}:h:{hour}", attempt.phone.as_str()),
            limit: self.per_phone_per_hour,
            window_secs: HOUR,
            guard: Guard::Phone,
        });
        if !attempt.test_number {
            budgets.push(Budget {
                key: format!("sms:cc:{calling_code}:h:{hour}"),
                limit: self.per_country_per_hour,
                window_secs: HOUR,
                guard: Guard::Country,
            });
            budgets.push(Budget {
                key: format!("sms:all:d:{day}"),
                limit: self.daily_budget,
                window_secs: DAY,
                guard: Guard::Daily,
            });
        }
        Ok(Plan {
            claim: idempotency_claim(attempt.idempotency_key),
            budgets,
        })
    }
}

fn parse_codes(text: &str) -> Result<BTreeSet<u16>, SmsConfigError> {
    const NAME: &str = "SMS_ALLOWED_COUNTRY_CODES";
    let mut codes = BTreeSet::new();
    for part in text.split(',').map(|p| p.trim().trim_start_matches('+')) {
        if part.is_empty() {
            continue;
        }
        // Country calling codes are 1 to 3 digits (ITU-T E.164).
        let code = part
            .parse::<u16>()
            .ok()
            .filter(|c| (1..=999).contains(c) && part.len() <= 3)
            .ok_or_else(|| {
                invalid(
                    NAME,
                    "must be country calling codes (1 to 3 digits) separated by commas",
                )
            })?;
        codes.insert(code);
    }
    if codes.is_empty() {
        return Err(invalid(NAME, "lists no country calling code"));
    }
    Ok(codes)
}

/// The counting unit for a source address: an IPv4 address, or an IPv6 /64 (one subscriber's
/// usual allocation, so rotating through it does not multiply the limit).
pub fn source_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// The idempotency key a flow uses for one request: the purpose and the request id that
/// Lambda and API Gateway keep across retries of that request (`requestContext.requestId`).
/// One request sends at most one SMS; a new request by the client is a new attempt and is
/// counted.
pub fn idempotency_key(purpose: crate::otp::Purpose, request_id: &str) -> String {
    format!("{}:{}", purpose.as_str(), request_id)
}

/// The store's once-only marker for `idempotency_key`.
pub fn idempotency_claim(idempotency_key: &str) -> Claim {
    Claim {
        key: format!("sms:once:{idempotency_key}"),
        ttl_secs: CLAIM_TTL_SECS,
    }
}

/// A key is 1 to [`super::MAX_IDEMPOTENCY_KEY_CHARS`] printable ASCII characters (it travels
/// in an HTTP header and a database key).
pub fn check_idempotency_key(key: &str) -> Result<(), Refusal> {
    let ok = !key.is_empty()
        && key.len() <= super::MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Refusal::BadIdempotencyKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{otp::Purpose, phone::parse_e164};

    const NOW: i64 = 1_764_115_200; // 2025-11-26T00:00:00Z: an hour and a day boundary

    fn phone(s: &str) -> Phone {
        parse_e164(s, None).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn attempt<'a>(p: &'a Phone, ip: Option<&str>, key: &'a str, now: i64) -> Attempt<'a> {
        Attempt {
            phone: p,
            source_ip: ip.map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))),
            idempotency_key: key,
            now,
            test_number: false,
        }
    }

    #[test]
    fn a_send_reserves_source_phone_country_and_daily_budgets_in_that_order() {
        let g = GuardSettings::default();
        let p = phone("+12025550101");
        let plan = g
            .plan(&attempt(&p, Some("203.0.113.9"), "signup:req-1", NOW))
            .unwrap_or_else(|e| panic!("{e}"));
        let h = NOW / HOUR;
        let d = NOW / DAY;
        assert_eq!(
            plan.claim,
            Claim {
                key: "sms:once:signup:req-1".into(),
                ttl_secs: DAY
            }
        );
        let got: Vec<_> = plan
            .budgets
            .iter()
            .map(|b| (b.key.as_str(), b.limit, b.window_secs))
            .collect();
        assert_eq!(
            got,
            vec![
                (format!("sms:ip:203.0.113.9:h:{h}").as_str(), 10, HOUR),
                (format!("sms:phone:+12025550101:h:{h}").as_str(), 5, HOUR),
                (format!("sms:cc:1:h:{h}").as_str(), 100, HOUR),
                (format!("sms:all:d:{d}").as_str(), 1000, DAY),
            ]
        );
    }

    #[test]
    fn limits_come_from_variables_and_bad_values_are_named() {
        let vars = Vars::from_pairs([
            ("SMS_PER_PHONE_PER_HOUR", "3"),
            ("SMS_PER_IP_PER_HOUR", "7"),
            ("SMS_PER_COUNTRY_PER_HOUR", "40"),
            ("SMS_DAILY_BUDGET", "250"),
            ("SMS_ALLOWED_COUNTRY_CODES", " 1, +44 ,49,"),
        ]);
        let g = GuardSettings::from_vars(&vars).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                g.per_phone_per_hour,
                g.per_ip_per_hour,
                g.per_country_per_hour,
                g.daily_budget
            ),
            (3, 7, 40, 250)
        );
        assert_eq!(g.allowed_country_codes, Some(BTreeSet::from([1, 44, 49])));
        for (name, bad) in [
            ("SMS_PER_PHONE_PER_HOUR", "0"),
            ("SMS_PER_IP_PER_HOUR", "-2"),
            ("SMS_DAILY_BUDGET", "1e3"),
            ("SMS_PER_COUNTRY_PER_HOUR", "4294967296"),
            ("SMS_ALLOWED_COUNTRY_CODES", "1,UK"),
            ("SMS_ALLOWED_COUNTRY_CODES", "1,4400"),
            ("SMS_ALLOWED_COUNTRY_CODES", "0"),
            ("SMS_ALLOWED_COUNTRY_CODES", ",,"),
        ] {
            let e = GuardSettings::from_vars(&Vars::from_pairs([(name, bad)])).err();
            assert!(
                matches!(&e, Some(SmsConfigError::Invalid { name: n, .. }) if *n == name),
                "{name}={bad}: {e:?}"
            );
        }
    }

    #[test]
    fn the_allow_list_refuses_other_countries_before_counting() {
        let g =
            GuardSettings::from_vars(&Vars::from_pairs([("SMS_ALLOWED_COUNTRY_CODES", "1,44")]))
                .unwrap_or_else(|e| panic!("{e}"));
        let us = phone("+12025550101");
        let uk = phone("+447400123456");
        let de = phone("+4930901820");
        assert!(g.allows(&us) && g.allows(&uk) && !g.allows(&de));
        assert_eq!(
            g.plan(&attempt(&de, None, "k", NOW)),
            Err(Refusal::CountryNotAllowed {
                calling_code: Some(49)
            })
        );
        assert!(g.plan(&attempt(&uk, None, "k", NOW)).is_ok());
        // Unset: every country, each under its own per-country counter.
        let open = GuardSettings::default();
        let plan = open
            .plan(&attempt(&de, None, "k", NOW))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.budgets.iter().any(|b| b.key.starts_with("sms:cc:49:")));
    }

    #[test]
    fn windows_roll_over_at_hour_and_day_boundaries() {
        let g = GuardSettings::default();
        let p = phone("+12025550101");
        let keys = |now| {
            g.plan(&attempt(&p, None, "k", now))
                .map(|p| p.budgets.into_iter().map(|b| b.key).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        // Within one hour every key is the same; one second into the next hour the hourly
        // keys change and the daily key does not (NOW + 3599 is still the same day).
        assert_eq!(keys(NOW), keys(NOW + HOUR - 1));
        let (a, b) = (keys(NOW + HOUR - 1), keys(NOW + HOUR));
        assert_ne!(a[0], b[0]);
        assert_eq!(a.last(), b.last());
        assert_ne!(
            keys(NOW - 1).last(),
            keys(NOW).last(),
            "NOW starts a UTC day"
        );
        let budget = &g
            .plan(&attempt(&p, None, "k", NOW + 10))
            .map(|p| p.budgets)
            .unwrap_or_default()[0];
        assert_eq!(budget.expires_at(NOW + 10), NOW + HOUR);
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        let k = |s: &str| source_key(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")));
        assert_eq!(
            k("2001:db8:1:2:aaaa::1"),
            k("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(k("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(k("203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn no_source_address_means_no_source_budget() {
        let p = phone("+12025550101");
        let plan = GuardSettings::default()
            .plan(&attempt(&p, None, "k", NOW))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.budgets.iter().all(|b| !b.key.starts_with("sms:ip:")));
        assert_eq!(plan.budgets.len(), 3);
    }

    #[test]
    fn test_numbers_count_attempts_but_spend_no_budget() {
        let p = phone("+12025550101");
        let mut a = attempt(&p, Some("198.51.100.1"), "k", NOW);
        a.test_number = true;
        let plan = GuardSettings::default()
            .plan(&a)
            .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<_> = plan
            .budgets
            .iter()
            .map(|b| b.key.split(':').nth(1).unwrap_or_default())
            .collect();
        assert_eq!(kinds, ["ip", "phone"]);
        assert!(plan.budgets.iter().all(|b| !b.spends()));
    }

    #[test]
    fn one_request_id_is_one_claim_and_bad_keys_are_refused() {
        let g = GuardSettings::default();
        let p = phone("+12025550101");
        let key = idempotency_key(Purpose::Signup, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        let again = idempotency_key(Purpose::Signup, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        let other_purpose = idempotency_key(
            Purpose::PasswordRecovery,
            "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        );
        let other_request = idempotency_key(Purpose::Signup, "another-request");
        let claim = |k: &str| g.plan(&attempt(&p, None, k, NOW)).map(|p| p.claim);
        // A retry of the request (even an hour later) claims the same key: it will not send.
        assert_eq!(
            claim(&key),
            g.plan(&attempt(&p, None, &again, NOW + HOUR))
                .map(|p| p.claim)
        );
        assert_ne!(claim(&key), claim(&other_purpose));
        assert_ne!(claim(&key), claim(&other_request));
        let long = "k".repeat(129);
        for bad in ["", "has space", "tab\t", "ünïcode", long.as_str()] {
            assert_eq!(claim(bad), Err(Refusal::BadIdempotencyKey), "{bad:?}");
        }
        assert!(claim(&"k".repeat(128)).is_ok());
    }
}
