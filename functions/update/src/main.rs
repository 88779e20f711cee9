//! The `update` Lambda function. Everything else (logging, metrics, the cold-start init and
//! how its failure is reported, the per-invocation span) is in `edge::lambda`.

fn main() -> Result<(), lambda_http::Error> {
    edge::functions::update()
}
