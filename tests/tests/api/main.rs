//! Every integration test, in one binary (one link, one process): a module per area. Support
//! code (the servers the setup started, fresh databases, events, [`api_tests::TestApp`]) lives
//! in `tests/src`.
#![allow(clippy::unwrap_used)]

mod admin;
mod audit;
mod concurrency;
mod faults;
mod fuzz;
mod handlers;
mod lambda_runtime;
mod lifecycle;
mod migration;
mod openapi;
mod routes;
mod secrets;
mod security;
mod store_conformance;
mod throttling;
