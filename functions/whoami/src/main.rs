//! The `whoami` Lambda function (GET /example/whoami): an example service behind API Gateway's
//! JWT authorizer, which verifies this issuer's tokens against its JWKS. It reads neither the
//! secret nor the database. Everything else is in `edge::lambda`.

fn main() -> Result<(), lambda_http::Error> {
    edge::functions::whoami()
}
