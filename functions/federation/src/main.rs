//! The `federation` Lambda function: sign-in with Google, Apple or any OpenID Connect
//! provider, and linking them. Everything else is in `edge::lambda`.

fn main() -> Result<(), lambda_http::Error> {
    edge::functions::federation()
}
