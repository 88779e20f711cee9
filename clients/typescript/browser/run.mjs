// Opens browser/index.html, served from its own port, in headless Chromium (Debian's, through
// playwright-core: no browser download) and checks what the page could do with the dev server
// at API_URL: a cross-origin app on another localhost port, as a developer would run one.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const root = new URL("..", import.meta.url).pathname;
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript" };
const server = createServer(async (req, res) => {
  const path = normalize(new URL(req.url, "http://x").pathname).replace(/^\/+/, "");
  const file = join(root, path === "" ? "browser/index.html" : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const page_url = `http://127.0.0.1:${server.address().port}/browser/index.html`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const seen = [];
  page.on("console", (m) => seen.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => seen.push(`page error: ${e}`));
  page.on("requestfailed", (r) => seen.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  const phone = `55${Math.floor(1e7 + Math.random() * 9e7)}`;
  const api = process.env.API_URL.replace("127.0.0.1", "localhost");
  await page.goto(`${page_url}?api=${encodeURIComponent(api)}&phone=${phone}`);
  await page
    .waitForFunction(() => document.querySelector("#status").textContent !== "running", null, {
      timeout: 20000,
    })
    .catch((e) => {
      throw new Error(`${e.message}\n${seen.join("\n")}`);
    });
  const status = await page.textContent("#status");
  assert.equal(status, "done", status);
  assert.equal(await page.textContent("#name"), "Ada Lovelace");
  assert.equal(await page.textContent("#problem"), "400 validation_failed /last_name");
  console.log(`ok - a page on ${new URL(page_url).origin} signed up, logged in and read a problem from ${api}`);

  await devServerPage(browser, api);
  await providerSignIn(browser, api);
} finally {
  await browser.close();
  server.close();
}

/** RFC 6238 (HMAC-SHA1, 30 s, six digits) with Node's crypto, `step` steps from now. */
function totp(secret, step = 0) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of secret.replace(/=+$/, "")) bits += alphabet.indexOf(ch).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + step));
  const mac = createHmac("sha1", key).update(counter).digest();
  const at = mac[19] & 0xf;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1e6).padStart(6, "0");
}

/** The dev server's own page (/app/), at http://localhost so passkeys work, with a virtual
 * WebAuthn authenticator from the DevTools protocol (CTAP2, resident keys, user verification):
 * sign up, log in, add an authenticator app, log in with its code, register a passkey, sign in
 * with it and no identifier, and see a bad signature and a missing user verification
 * refused. */
async function devServerPage(browser, api) {
  const origin = new URL(api).origin;
  const page = await browser.newPage();
  const seen = [];
  page.on("console", (m) => seen.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => seen.push(`page error: ${e}`));
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const status = async (want) => {
    try {
      await page.waitForFunction(
        (w) => document.querySelector("#status").textContent === w,
        want,
        { timeout: 15000 },
      );
    } catch (e) {
      const now = await page.textContent("#status");
      throw new Error(`waited for "${want}", the page says "${now}"\n${seen.join("\n")}`);
    }
  };
  const overrides = (bits) =>
    cdp.send("WebAuthn.setResponseOverrideBits", {
      authenticatorId,
      isBogusSignature: false,
      isBadUV: false,
      isBadUP: false,
      ...bits,
    });
  await page.goto(`${origin}/app/`);
  await status("ready");
  const phone = `55${Math.floor(1e7 + Math.random() * 9e7)}`;
  await page.fill("#phone", phone);
  await page.fill("#password", "securepassword123");
  await page.click("#signup");
  await status("sign up: account made: log in");
  await page.fill("#login-password", "securepassword123");
  await page.click("#login");
  await status("log in: signed in");
  assert.equal(await page.textContent("#who"), "Ada Lovelace");

  await page.click("#totp-start");
  await status("authenticator app: enter the app's code");
  const secret = await page.textContent("#totp-secret");
  await page.fill("#totp-code", totp(secret));
  await page.click("#totp-confirm");
  await status("authenticator app: added; 10 recovery codes");

  await page.click("#logout");
  await status("log out: signed out");
  await page.click("#login");
  await status("log in: second factor required");
  await page.fill("#mfa-code", totp(secret, 1));
  await page.click("#mfa-submit");
  await status("second factor: signed in");
  assert.match(await page.textContent("#aal"), /aal2, pwd\+otp\+mfa/);

  await page.click("#passkey-register");
  await status("passkey: registered This device");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true);

  await page.click("#logout");
  await status("log out: signed out");
  await page.click("#passkey-login");
  await status("passkey sign-in: signed in");
  assert.equal(await page.textContent("#who"), "Ada Lovelace");
  assert.match(await page.textContent("#aal"), /aal2, (hwk|swk)\+mfa/);

  // The authenticator's answer falsified: a signature over other data, then the user
  // verification flag cleared. The API refuses both; the passkey still works after.
  await page.click("#logout");
  await status("log out: signed out");
  for (const [bits, what] of [
    [{ isBogusSignature: true }, "a bad signature"],
    [{ isBadUV: true }, "no user verification"],
  ]) {
    await overrides(bits);
    await page.click("#passkey-login");
    await status("passkey sign-in: 400 passkey_refused").catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    assert.equal(await page.textContent("#who"), "nobody", what);
  }
  await overrides({});
  await page.click("#passkey-login");
  await status("passkey sign-in: signed in");
  console.log(`ok - the dev server's page at ${origin}/app/ signed up, added TOTP, signed in with it, registered a passkey and signed in with it; a bad signature and a missing UV were refused`);
  await page.close();
}

/** The dev server's page signing in through the local OpenID provider (browser flow): the
 * page sends the browser to GET /federation/local/authorize, the provider signs the person in
 * and sends the browser back to our callback (the state's binding cookie must make the trip),
 * which sends it to the page with a one-time code the page exchanges with its PKCE verifier.
 * Twice: the second sign-in finds the account the first made. Then a callback replayed from
 * a browser without the binding cookie is refused. */
async function providerSignIn(browser, api) {
  const origin = new URL(api).origin;
  const control = process.env.OIDC_CONTROL;
  const login = await fetch(`${control}/login`, {
    method: "POST",
    body: JSON.stringify({ claims: { sub: `grace-${Date.now()}`, given_name: "Grace", family_name: "Hopper" } }),
  });
  assert.equal(login.status, 200);
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = [];
  page.on("console", (m) => seen.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => seen.push(`page error: ${e}`));
  const callbacks = [];
  page.on("request", (r) => {
    if (r.url().includes("/federation/local/callback")) callbacks.push(r.url());
  });
  const status = async (want) => {
    try {
      await page.waitForFunction((w) => document.querySelector("#status").textContent === w, want, { timeout: 15000 });
    } catch {
      const now = await page.textContent("#status").catch(() => "?");
      throw new Error(`waited for "${want}", the page says "${now}" at ${page.url()}\n${seen.join("\n")}`);
    }
  };
  const ids = [];
  for (const round of ["made", "found"]) {
    await page.goto(`${origin}/app/`);
    await status("ready");
    await page.fill("#provider", "local");
    await page.click("#provider-login");
    await status("provider sign-in: signed in");
    assert.equal(await page.textContent("#who"), "Grace Hopper", round);
    assert.equal(new URL(page.url()).search, "", "the code is taken out of the address bar");
    ids.push(await page.getAttribute("#who", "data-user"));
    await page.click("#logout");
    await status("log out: signed out");
  }
  assert.ok(ids[0] && ids[0] === ids[1], `one account: ${ids}`);
  // The callback as it came back from the provider, opened in a browser that never started
  // that sign-in (no binding cookie), and replayed: both refused.
  assert.equal(callbacks.length, 2);
  const other = await browser.newContext();
  const stranger = await other.newPage();
  const replay = await stranger.goto(callbacks[1]);
  assert.equal(replay.status(), 400);
  assert.equal((await replay.json()).code, "state_invalid");
  await other.close();
  await context.close();
  console.log(`ok - the dev server's page signed in through a local OpenID provider twice (browser flow, PKCE, state bound by cookie); a callback opened in another browser was refused`);
}
