//! Starts the dev-server binary on a free port for end-to-end tests, load tests and benches.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// A running dev server; killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// The first line it printed (says which store it uses).
    pub banner: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` on a free loopback port in a directory without a `.env.development`, with a
/// fresh database name; `configure` adds the rest of the environment.
pub fn start(bin: &Path, configure: impl FnOnce(&mut Command)) -> Server {
    let port = crate::free_port();
    let mut cmd = Command::new(bin);
    cmd.current_dir(std::env::temp_dir())
        .env("PORT", port.to_string())
        .env("DB_NAME", crate::fresh_db())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    configure(&mut cmd);
    let mut child = cmd.spawn().expect("dev-server starts");
    let mut banner = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut banner);
    }
    assert!(
        banner.contains("listening"),
        "dev-server did not start: {banner}"
    );
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        banner,
    }
}

/// Starts `bin` with the test keys, on MongoDB when `mongo`, else on the embedded store.
pub fn start_with_keys(bin: &Path, mongo: bool) -> Server {
    start(bin, |cmd| {
        cmd.env("JWT_SECRET_KEY", crate::JWT_KEY)
            .env("SESSION_SECRET_KEY", crate::SESSION_KEY);
        if mongo {
            cmd.env("MONGO_URI", crate::mongo_uri());
        } else {
            cmd.env_remove("MONGO_URI");
        }
    })
}
