//! The `passkeys` Lambda function: passkey ceremonies (registration, sign-in, step-up) and the
//! owner's passkeys. The one binary that links webauthn-rs: its relying party is handed to
//! the shared runtime here; everything else is in `edge::lambda`.

fn main() -> Result<(), lambda_http::Error> {
    edge::functions::passkeys(relying_party::from_vars)
}
