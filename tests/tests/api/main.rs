//! Every integration test, in one binary (one link, one process): a module per area. Support
//! code (the servers the setup started, fresh databases, events, [`api_tests::TestApp`]) lives
//! in `tests/src`.
#![allow(clippy::unwrap_used)]

mod admin;
mod audit;
mod claims;
mod concurrency;
mod conformance;
mod dev_server;
mod dev_server_hardening;
mod email;
mod events;
mod faults;
mod federation;
mod federation_browser;
mod fuzz;
mod guards;
mod handlers;
mod hooks;
mod hooks_lambda;
mod http_client;
mod issuer;
mod lambda_runtime;
mod lifecycle;
mod load;
mod mfa;
mod migration;
mod observability;
mod openapi;
mod passkeys;
mod refresh;
mod rotation;
mod routes;
mod rs256;
mod secrets;
mod security;
mod sms;
mod stored_shapes;
mod throttling;
mod token_attacks;
mod verification;
mod verification_e2e;
