//! How long the dev server waits for a client and how many it serves at once. Without these,
//! slow or idle connections were held forever (200 half-open connections still open after
//! 45 s), each costing a task and a file descriptor. In AWS, API Gateway does this job.

use std::time::Duration;

use domain::config::Vars;

/// Seconds to send a request's headers; also the longest a keep-alive connection may sit idle
/// between requests (hyper runs this timer whenever it waits for a request head).
pub const HEADER_TIMEOUT_VAR: &str = "DEV_SERVER_HEADER_TIMEOUT_SECONDS";
/// Seconds to send a request's body once its headers are in.
pub const BODY_TIMEOUT_VAR: &str = "DEV_SERVER_BODY_TIMEOUT_SECONDS";
/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS_VAR: &str = "DEV_SERVER_MAX_CONNECTIONS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// Reads the limits from `vars`; an unset variable takes its default, an invalid one (not
    /// a whole number above zero) stops start-up with a message naming it.
    pub fn from_vars(vars: &Vars) -> Result<Self, String> {
        Ok(Self {
            header_timeout: Duration::from_secs(positive(vars, HEADER_TIMEOUT_VAR, 10)?),
            body_timeout: Duration::from_secs(positive(vars, BODY_TIMEOUT_VAR, 10)?),
            max_connections: usize::try_from(positive(vars, MAX_CONNECTIONS_VAR, 256)?)
                .map_err(|_| format!("{MAX_CONNECTIONS_VAR} is too large"))?,
        })
    }
}

/// [`Vars::positive`], its error as the message start-up stops with.
fn positive(vars: &Vars, name: &str, default: u64) -> Result<u64, String> {
    vars.positive(name, default).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset_and_bad_values_name_the_variable() {
        let none: [(&str, &str); 0] = [];
        let limits = Limits::from_vars(&Vars::from_pairs(none));
        assert_eq!(
            limits,
            Ok(Limits {
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(10),
                max_connections: 256,
            })
        );
        let set = Vars::from_pairs([
            (HEADER_TIMEOUT_VAR, "2"),
            (BODY_TIMEOUT_VAR, " 3 "),
            (MAX_CONNECTIONS_VAR, "40"),
        ]);
        assert_eq!(
            Limits::from_vars(&set),
            Ok(Limits {
                header_timeout: Duration::from_secs(2),
                body_timeout: Duration::from_secs(3),
                max_connections: 40,
            })
        );
        for bad in ["0", "-1", "ten", "1.5", "99999999999999999999999"] {
            let err = Limits::from_vars(&Vars::from_pairs([(BODY_TIMEOUT_VAR, bad)]));
            assert_eq!(
                err,
                Err(format!("{BODY_TIMEOUT_VAR} is not a valid positive number")),
                "{bad}"
            );
        }
    }
}
