//! The `events-drain` Lambda function, run on a schedule: delivers the lifecycle events that
//! the requests making them could not (the bus was down, the instance froze). Everything else
//! is in `edge::lambda::serve_drain`.

fn main() -> Result<(), lambda_http::Error> {
    edge::functions::events_drain()
}
