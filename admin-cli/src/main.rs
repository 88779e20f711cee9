//! `user-admin`: what an operator does to accounts from a laptop or a one-off task, through
//! the same domain code the IAM-signed admin routes call, against `MONGO_URI` (`DB_NAME`,
//! `COLLECTION_NAME` as for the functions; or `SECRET_ID` to read them from Secrets Manager).
//!
//! Output is JSON, one object per line, on stdout; audit and other log lines go to stderr.
//! Every action is audited with the acting principal: `cli:$USER@$HOSTNAME`, or
//! `USER_ADMIN_ACTOR` when set.
//!
//! `export` writes every user with their PHC password hash: the file is as sensitive as the
//! database itself (offline guessing needs nothing else). Keep it encrypted and short-lived.

mod lines;

use std::{
    io::{BufRead, BufReader, BufWriter, Write},
    process::ExitCode,
};

use domain::{
    claims::Metadata,
    config::Vars,
    identity::{Email, Identifier},
    service::{
        Client, Ctx,
        admin::{self, Actor},
        migration::{self, Imported, Normalized},
    },
    store::UserRecord,
    types::{Phone, UserId},
};
use edge::State;
use serde_json::{Value, json};

const USAGE: &str = "usage: user-admin <command>
  find --phone PHONE | --email EMAIL | --id ID
                                 show a user (never the hash)
  disable ID | enable ID         disable (ends every session) or re-enable an account
  logout-all ID                  end every session of the user
  reseal-mfa                     seal every TOTP secret under the current key (after a key
                                 rotation, before the next one retires the old key)
  reset-mfa ID                   remove every second factor and recovery code of a user who
                                 lost them all (ends every session; tells the user by SMS and
                                 email where SMS_SENDER / EMAIL_SENDER are set)
  set-roles ID [ROLE,...]        set the user's roles (app_metadata.roles; none clears them):
                                 its next token carries them as `roles` and `role:<name>`
                                 scopes; the rest of app_metadata stays
  set-app-metadata ID JSON       replace the user's app_metadata (operators' metadata)
  delete ID                      delete the user and everything kept about them
  export [FILE]                  every user as JSON Lines, PHC hashes included (SENSITIVE)
  import [FILE]                  users from JSON Lines (this tool's export, mongoexport of the
                                 Flask collection, or any line with phone, names and a
                                 bcrypt/argon2/Werkzeug hash); FILE '-' or absent: stdin
  import --from-mongo URI [--from-db DB] [--from-collection C]
                                 users straight from another MongoDB collection (the Flask
                                 service's UserDatabase.User by default)
  normalize                      rewrite stored phones in canonical form, refusing duplicates
  clear-code-failures --phone PHONE
                                 let a phone that reached its cap of failed codes use the
                                 code routes again (E.164, or national in SMS_DEFAULT_REGION)
  drain-events                   deliver the lifecycle events left in the outbox to EVENTS_BUS
                                 (what the scheduled events-drain function does)
environment: MONGO_URI (required), DB_NAME, COLLECTION_NAME, or SECRET_ID";

/// Users read per store call while walking the collection.
const PAGE: usize = 500;

/// A failure that ends the command: usage (exit 2) or anything else (exit 1).
enum Fail {
    Usage(String),
    Other(String),
}

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Self::Other(e.to_string())
    }
}

fn main() -> ExitCode {
    // The functions' log line shape (fields flattened, `RUST_LOG` as they read it), on
    // stderr: stdout carries the command's JSON output.
    if let Err(e) = edge::telemetry::try_init_to(None, edge::telemetry::Sink::Stderr) {
        tracing::error!(error = %e, "logging configuration refused; logging at info");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("user-admin: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(msg)) => {
            eprintln!("user-admin: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Other(msg)) => {
            eprintln!("user-admin: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The state over `MONGO_URI`. The tool issues no tokens, so without configured keys it makes
/// throwaway ones (they only seed the phone tags in audit lines).
async fn state() -> Result<State, Fail> {
    let mut vars = Vars::from_env();
    if vars.get("SECRET_ID").is_none() {
        // No RSA key to sign with is needed either: HS256 throwaway keys do.
        if vars.get("JWT_PRIVATE_KEY").is_none() && vars.get("JWT_ALGORITHM").is_none() {
            vars.set("JWT_ALGORITHM", "HS256");
        }
        for name in ["JWT_SECRET_KEY", "SESSION_SECRET_KEY"] {
            if vars.get(name).is_none() {
                let mut b = [0u8; 32];
                getrandom::fill(&mut b)?;
                vars.set(
                    name,
                    b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
                );
            }
        }
    }
    Ok(State::load(&vars, true).await?)
}

fn actor() -> Actor {
    if let Ok(a) = std::env::var("USER_ADMIN_ACTOR")
        && !a.trim().is_empty()
    {
        return Actor(a);
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    Actor(format!("cli:{user}@{host}"))
}

fn out(v: &Value) -> Result<(), Fail> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{v}")?;
    Ok(())
}

fn id_arg(args: &[String]) -> Result<UserId, Fail> {
    let raw = args
        .get(1)
        .ok_or_else(|| Fail::Usage("a user id is required".to_owned()))?;
    UserId::parse_hex(raw).ok_or_else(|| Fail::Usage("a user id is 24 hex digits".to_owned()))
}

fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// What the tool shows of a user: never the hash.
fn view(u: &UserRecord) -> Value {
    json!({
        "_id": {"$oid": u.id.to_hex()},
        "first_name": u.first_name.as_str(),
        "middle_name": u.middle_name.as_ref().map(|m| m.as_str()),
        "last_name": u.last_name.as_str(),
        "phone": u.phone().map(|p| p.as_str()),
        "phone_verified": u.phone_verified(),
        "email": u.email().map(|e| e.as_str()),
        "email_verified": u.verified(domain::identity::IdentifierKind::Email),
        "disabled": u.disabled,
        "app_metadata": u.app_metadata.as_map(),
        "user_metadata": u.user_metadata.as_map(),
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

async fn run(args: &[String]) -> Result<(), Fail> {
    let command = args
        .first()
        .ok_or_else(|| Fail::Usage("no command".to_owned()))?
        .as_str();
    if !matches!(
        command,
        "find"
            | "disable"
            | "enable"
            | "logout-all"
            | "reset-mfa"
            | "reseal-mfa"
            | "set-roles"
            | "set-app-metadata"
            | "delete"
            | "export"
            | "import"
            | "normalize"
            | "clear-code-failures"
            | "drain-events"
    ) {
        return Err(Fail::Usage(format!("unknown command {command:?}")));
    }
    let state = state().await?;
    if command == "drain-events" {
        let d = state
            .drain_events(std::time::Duration::from_secs(300))
            .await;
        return out(
            &json!({"sent": d.sent, "dropped": d.dropped, "failed": d.failed, "waiting": d.waiting}),
        );
    }
    // The events a command writes are delivered when it is done, as a request's are; what
    // cannot be goes to the drain.
    let (done, written) = domain::events::journal::scope(command_with(&state, command, args)).await;
    if let Some(relay) = &state.relay
        && !written.is_empty()
    {
        relay.deliver(written, state.clock.now()).await;
    }
    done
}

async fn command_with(state: &State, command: &str, args: &[String]) -> Result<(), Fail> {
    let client = Client {
        request_id: format!("cli-{}", std::process::id()),
        ..Client::default()
    };
    let cx = state.ctx(&client);
    let actor = actor();
    match command {
        "find" => {
            let by = (
                opt(args, "--phone"),
                opt(args, "--email"),
                opt(args, "--id"),
            );
            let user = match by {
                (Some(p), None, None) => {
                    let phone = Phone::parse(p).map_err(|e| Fail::Usage(format!("phone: {e}")))?;
                    admin::find_by(&cx, &actor, &Identifier::Phone(phone)).await?
                }
                (None, Some(e), None) => {
                    let email = Email::parse(e).map_err(|e| Fail::Usage(format!("email: {e}")))?;
                    admin::find_by(&cx, &actor, &Identifier::Email(email)).await?
                }
                (None, None, Some(_)) => {
                    let rest: Vec<String> = args.iter().skip(1).cloned().collect();
                    admin::find_by_id(&cx, &actor, &id_arg(&rest)?).await?
                }
                _ => {
                    return Err(Fail::Usage(
                        "find takes --phone, --email or --id".to_owned(),
                    ));
                }
            };
            out(&view(&user))
        }
        "disable" | "enable" => {
            let user =
                admin::set_disabled(&cx, &actor, &id_arg(args)?, command == "disable").await?;
            out(&view(&user))
        }
        "reseal-mfa" => {
            let r = admin::reseal_mfa(&cx, &actor).await?;
            out(&json!({"resealed": r.resealed, "current": r.current, "unreadable": r.unreadable}))
        }
        "reset-mfa" => {
            let user = admin::reset_mfa(&cx, &actor, &id_arg(args)?).await?;
            out(&view(&user))
        }
        "set-roles" | "set-app-metadata" => {
            let id = id_arg(args)?;
            let value = if command == "set-roles" {
                let roles: Vec<&str> = args
                    .get(2)
                    .map(|r| {
                        r.split(',')
                            .map(str::trim)
                            .filter(|r| !r.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut m = admin::find_by_id(&cx, &actor, &id)
                    .await?
                    .app_metadata
                    .as_map()
                    .clone();
                if roles.is_empty() {
                    m.remove("roles");
                } else {
                    m.insert("roles".to_owned(), json!(roles));
                }
                Value::Object(m)
            } else {
                let raw = args
                    .get(2)
                    .ok_or_else(|| Fail::Usage("set-app-metadata takes ID JSON".to_owned()))?;
                serde_json::from_str(raw)
                    .map_err(|e| Fail::Usage(format!("app_metadata is not JSON: {e}")))?
            };
            let m = Metadata::parse_app(value, cx.policy.claims.metadata_max_bytes)
                .map_err(|e| Fail::Usage(format!("app_metadata {e}")))?;
            let user = admin::set_app_metadata(&cx, &actor, &id, m).await?;
            out(&view(&user))
        }
        "logout-all" => {
            let ended = admin::end_sessions(&cx, &actor, &id_arg(args)?).await?;
            out(&json!({"sessions_ended": ended}))
        }
        "delete" => {
            let id = id_arg(args)?;
            let deleted = admin::delete(&cx, &actor, &id).await?;
            out(&json!({"_id": {"$oid": id.to_hex()}, "deleted": deleted}))
        }
        "clear-code-failures" => {
            let raw = opt(args, "--phone")
                .ok_or_else(|| Fail::Usage("clear-code-failures takes --phone".to_owned()))?;
            let phone = cx
                .verification
                .parse_phone(raw)
                .map_err(|e| Fail::Usage(format!("phone: {e}")))?;
            admin::clear_code_failures(&cx, &actor, &phone).await?;
            out(&json!({"phone": phone.as_str(), "code_failures_cleared": true}))
        }
        "export" => export(&cx, args.get(1).map(String::as_str)).await,
        "import" => import(&cx, args).await,
        _ => normalize(&cx).await,
    }
}

async fn export(cx: &Ctx<'_>, file: Option<&str>) -> Result<(), Fail> {
    let sink: Box<dyn Write> = match file {
        None | Some("-") => Box::new(std::io::stdout().lock()),
        Some(path) => Box::new(std::fs::File::create(path)?),
    };
    let mut w = BufWriter::new(sink);
    let mut after = None;
    let mut count = 0u64;
    loop {
        let page = cx.store.users_after(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for u in &page {
            writeln!(w, "{}", lines::export_line(u))?;
            count += 1;
        }
    }
    w.flush()?;
    drop(w);
    tracing::info!(target: "audit", event = "admin", action = "export", actor = actor().0.as_str(), users = count);
    eprintln!("{}", json!({"exported": count}));
    Ok(())
}

#[derive(Default)]
struct Tally {
    lines: u64,
    imported: u64,
    already_present: u64,
    skipped: u64,
}

impl Tally {
    async fn take(
        &mut self,
        cx: &Ctx<'_>,
        line: u64,
        record: Result<migration::ImportRecord, String>,
    ) -> Result<(), Fail> {
        self.lines += 1;
        let outcome = match record {
            Ok(r) => migration::import_user(cx, &r).await?,
            Err(reason) => Imported::Skipped(migration::Skip(reason)),
        };
        match outcome {
            Imported::Inserted(_) => self.imported += 1,
            Imported::AlreadyPresent(_) => self.already_present += 1,
            Imported::Skipped(why) => {
                self.skipped += 1;
                out(&json!({"line": line, "skipped": why.0}))?;
            }
        }
        if self.lines.is_multiple_of(100_000) {
            eprintln!("{}", json!({"progress": self.lines}));
        }
        Ok(())
    }
}

async fn import(cx: &Ctx<'_>, args: &[String]) -> Result<(), Fail> {
    let mut tally = Tally::default();
    if let Some(uri) = opt(args, "--from-mongo") {
        use futures::TryStreamExt;
        let client = mongodb::Client::with_uri_str(uri).await?;
        let coll = client
            .database(opt(args, "--from-db").unwrap_or("UserDatabase"))
            .collection::<mongodb::bson::Document>(
                opt(args, "--from-collection").unwrap_or("User"),
            );
        let mut cursor = coll.find(mongodb::bson::doc! {}).await?;
        let mut n = 0;
        while let Some(d) = cursor.try_next().await? {
            n += 1;
            let v = mongodb::bson::Bson::Document(d).into_relaxed_extjson();
            tally.take(cx, n, lines::import_record(&v)).await?;
        }
    } else {
        let source: Box<dyn std::io::Read> = match args.get(1).map(String::as_str) {
            None | Some("-") => Box::new(std::io::stdin().lock()),
            Some(path) => Box::new(std::fs::File::open(path)?),
        };
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        let mut buf = String::new();
        let mut n = 0;
        loop {
            buf.clear();
            if reader.read_line(&mut buf)? == 0 {
                break;
            }
            n += 1;
            if buf.trim().is_empty() {
                tally.lines += 1;
                continue;
            }
            let record = serde_json::from_str::<Value>(&buf)
                .map_err(|_| "line is not a JSON object".to_owned())
                .and_then(|v| lines::import_record(&v));
            tally.take(cx, n, record).await?;
        }
    }
    tracing::info!(target: "audit", event = "admin", action = "import", actor = actor().0.as_str(),
        imported = tally.imported, already_present = tally.already_present, skipped = tally.skipped);
    out(&json!({
        "imported": tally.imported,
        "already_present": tally.already_present,
        "skipped": tally.skipped,
        "peak_rss_kib": peak_rss_kib(),
    }))
}

async fn normalize(cx: &Ctx<'_>) -> Result<(), Fail> {
    let (mut changed, mut unchanged, mut skipped) = (0u64, 0u64, 0u64);
    let mut after = None;
    loop {
        let page = cx.store.users_after(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for u in &page {
            match migration::normalize_phone(cx, u).await? {
                Normalized::Unchanged => unchanged += 1,
                Normalized::Changed => changed += 1,
                Normalized::Skipped(why) => {
                    skipped += 1;
                    out(&json!({"_id": {"$oid": u.id.to_hex()}, "skipped": why.0}))?;
                }
            }
        }
    }
    tracing::info!(target: "audit", event = "admin", action = "normalize", actor = actor().0.as_str(),
        changed, unchanged, skipped);
    out(&json!({"changed": changed, "unchanged": unchanged, "skipped": skipped}))
}

/// The process's peak resident set (Linux `VmHWM`), for the import report.
fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
