#!/usr/bin/env python3
"""Runs every recipe in the docs: each fenced block whose info string is `sh docs-test` (or
`sh docs-test:MODE`) in README.md and docs/*.md, as written, in one bash process per block,
from the repository root.

What it adds, so a recipe can be read as prose and still be run:
- each `curl` command is run through a wrapper that keeps the answer's body and status; a
  comment right after the command that starts with an HTTP status (`# 201 ...`) is checked
  against the status the command got;
- the placeholders of earlier answers are filled in: `<jwt>` (the last `token`), `<token>`
  (`session_token`), `<refresh>` (`refresh_token`), `<device>` (`device_token`), `<user id>` and
  `<id>` (the last `user_id` or `_id`), `<enrolment>`, `<secret>` and `<mfa token>` (a TOTP
  enrolment's and a second-factor challenge's), kept for the document's later blocks of the
  same mode;
- any other command must exit 0.

Modes: none (a dev server as `cargo run --bin dev-server` starts it, on port 8000, with the
embedded store), `verify` (the same with REQUIRE_PHONE_VERIFICATION=true and the test numbers
+15555550100 and +15555550101, code 123456), `mongo` (the dev server on the test MongoDB
server, `mongodb://localhost:27017` in the recipe meaning that server and `UserDatabase` a
fresh database), `alone` (no dev server: the recipe starts what it needs).
"""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(\s*)```sh docs-test(?::(\w+))?\s*$")
STATUS = re.compile(r"^#\s*(\d{3})\b")
PLACEHOLDERS = {
    "<jwt>": "DOCS_JWT",
    "<token>": "DOCS_SESSION",
    "<refresh>": "DOCS_REFRESH",
    "<device>": "DOCS_DEVICE",
    "<user id>": "DOCS_USER",
    "<id>": "DOCS_USER",
    "<enrolment>": "DOCS_ENROLMENT",
    "<secret>": "DOCS_SECRET",
    "<mfa token>": "DOCS_MFA",
}

PRELUDE = r"""
set -euo pipefail
DOCS_STATE=$(mktemp -d)
docs_vars() { [ -f "$DOCS_STATE/vars" ] && source "$DOCS_STATE/vars"; return 0; }
curl() {
  command curl --silent --show-error --output "$DOCS_STATE/body" --write-out '%{http_code}' "$@" \
    > "$DOCS_STATE/status"
  cat "$DOCS_STATE/body"; echo
  echo "-> HTTP $(cat "$DOCS_STATE/status")" >&2
  python3 - "$DOCS_STATE" "$DOCS_VARS_FILE" <<'PY'
import json, shlex, sys
state, keep = sys.argv[1], sys.argv[2]
try:
    body = json.load(open(state + "/body"))
except Exception:
    body = None
names = {"token": "DOCS_JWT", "session_token": "DOCS_SESSION", "refresh_token": "DOCS_REFRESH",
         "device_token": "DOCS_DEVICE", "enrolment": "DOCS_ENROLMENT", "secret": "DOCS_SECRET",
         "mfa_token": "DOCS_MFA"}
found = {}
if isinstance(body, dict):
    for k, v in names.items():
        if isinstance(body.get(k), str):
            found[v] = body[k]
    for k in ("user_id", "_id"):
        if isinstance(body.get(k), dict) and isinstance(body[k].get("$oid"), str):
            found["DOCS_USER"] = body[k]["$oid"]
if found:
    with open(keep, "a") as f:
        for k, v in found.items():
            f.write(f"{k}={shlex.quote(v)}\n")
PY
  source "$DOCS_VARS_FILE"
}
docs_expect() {
  local got; got=$(cat "$DOCS_STATE/status")
  if [ "$got" != "$1" ]; then
    echo "docs-test: expected HTTP $1, got $got: $(cat "$DOCS_STATE/body")" >&2; exit 1
  fi
}
source "$DOCS_VARS_FILE"
"""


def substitute(command: str) -> str:
    """Fills placeholders in, as a shell variable in whatever quoting surrounds them."""
    out, i, quote = [], 0, None
    while i < len(command):
        c = command[i]
        hit = next((p for p in PLACEHOLDERS if command.startswith(p, i)), None)
        if hit:
            var = PLACEHOLDERS[hit]
            out.append({"'": f"'\"${var}\"'", '"': f"${{{var}}}"}.get(quote, f'"${{{var}}}"'))
            i += len(hit)
            continue
        if quote is None and c in "'\"":
            quote = c
        elif quote == c:
            quote = None
        out.append(c)
        i += 1
    return "".join(out)


def blocks(path: pathlib.Path):
    """(mode, first line number, lines) of each docs-test block of `path`."""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, mode, start, body = len(m.group(1)), m.group(2) or "", i + 1, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        yield mode, start + 1, body
        i += 1


def script(body: list[str]) -> str:
    """The block as a bash script: commands joined across `\\`, statuses checked."""
    out, pending = [], ""
    for line in body:
        if pending:
            pending += "\n" + line
        elif line.strip().startswith("#"):
            m = STATUS.match(line.strip())
            out.append(f"docs_expect {m.group(1)}" if m and out and out[-1].startswith("curl") else line)
            continue
        else:
            pending = line
        if pending.endswith("\\"):
            continue
        out.append(substitute(pending))
        pending = ""
    return PRELUDE + "\n".join(out) + "\n"


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def dev_server(mode: str, env: dict) -> subprocess.Popen | None:
    if mode == "alone":
        return None
    if not free(8000):
        sys.exit("docs-test: port 8000 is taken; the recipes use http://localhost:8000")
    server_env = dict(env)
    for name in ("MONGO_URI", "JWT_ISSUER", "CORS_ALLOWED_ORIGINS", "REQUIRE_PHONE_VERIFICATION"):
        server_env.pop(name, None)
    if mode == "verify":
        server_env["REQUIRE_PHONE_VERIFICATION"] = "true"
        server_env["SMS_TEST_NUMBERS"] = "+15555550100:123456,+15555550101:123456"
    if mode == "mongo":
        server_env["MONGO_URI"] = env["TEST_MONGO_URI"]
        server_env["DB_NAME"] = env["DOCS_DB"]
    p = subprocess.Popen(
        [str(ROOT / "target/debug/dev-server")],
        cwd=ROOT / "target",  # no .env.development there
        env={**server_env, "PORT": "8000", "HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        if not free(8000):
            return p
        time.sleep(0.1)
    p.kill()
    sys.exit("docs-test: the dev server did not start")


def main() -> int:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    base_env = dict(os.environ)
    base_env["PATH"] = f"{ROOT / 'target/debug'}:{ROOT / '.venv/bin'}:{base_env['PATH']}"
    ran = failed = 0
    for doc in docs:
        by_mode: dict[str, list] = {}
        for mode, line, body in blocks(doc):
            by_mode.setdefault(mode, []).append((line, body))
        for mode, found in by_mode.items():
            env = dict(base_env)
            env["DOCS_DB"] = f"docs_{uuid.uuid4().hex[:12]}"
            vars_file = ROOT / "target" / f"docs-vars-{uuid.uuid4().hex[:8]}"
            vars_file.write_text("")
            env["DOCS_VARS_FILE"] = str(vars_file)
            server = dev_server(mode, env)
            try:
                for line, body in found:
                    text = script(body)
                    if mode == "mongo":
                        text = text.replace("mongodb://localhost:27017", env["TEST_MONGO_URI"])
                        text = text.replace("DB_NAME=UserDatabase", f"DB_NAME={env['DOCS_DB']}")
                    where = f"{doc.relative_to(ROOT)}:{line}"
                    r = subprocess.run(["bash", "-c", text], cwd=ROOT, env=env,
                                       capture_output=True, text=True, timeout=900)
                    ran += 1
                    if r.returncode == 0:
                        print(f"ok {ran} - {where} ({mode or 'dev-server'})")
                    else:
                        failed += 1
                        print(f"not ok {ran} - {where} ({mode or 'dev-server'})")
                        print("  " + (r.stdout[-1500:] + r.stderr[-2500:]).replace("\n", "\n  "))
            finally:
                if server:
                    server.terminate()
                    server.wait()
                vars_file.unlink(missing_ok=True)
    print(f"{ran - failed} passed, {failed} failed")
    return 1 if failed or ran == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
