//! The HTTP edge: the router, request extraction, replies, and one small handler per
//! endpoint. A handler reads a typed body (the JSON Schema is the gate, serde the reader),
//! turns it into domain values with `TryFrom`, makes one domain call and maps the outcome to
//! a response. Every request gets a response, never an error, so a client mistake can never
//! reach the Lambda runtime as a failed invocation.

mod admin;
mod delete_user;
mod example;
mod extract;
mod federation;
mod keys;
mod login;
mod logout;
mod mfa;
mod passkey;
mod refresh;
mod reply;
pub(crate) mod router;
mod signup;
pub mod table;
mod user;
mod verify;

pub use extract::Input;
pub use extract::MAX_BODY_BYTES;
pub use router::{Handler, Reply, dispatch, dispatch_with, route, stateless};
