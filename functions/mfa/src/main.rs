//! The `mfa` Lambda function: second factors and the step-up. Everything else (logging,
//! metrics, the cold-start init and how its failure is reported, the per-invocation span) is
//! in `edge::lambda`.

fn main() -> Result<(), lambda_http::Error> {
    edge::functions::mfa()
}
