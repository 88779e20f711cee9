// The client against a running dev server (API_URL; `scripts/client-test` starts one).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";

import { ApiProblem, SecondFactorRequired, UserApiClient } from "../src/index.js";

const baseUrl = process.env.API_URL ?? "http://127.0.0.1:8000";
const password = "securepassword123";

/** A phone no other test uses (the legacy rule: 10 digits). */
function phone(): string {
  return `55${Math.floor(1e7 + Math.random() * 9e7)}`;
}

/** A fetch that records each request's method, path and JSON body. */
function recording() {
  const seen: { method: string; path: string; body: any }[] = [];
  const f: typeof fetch = async (input, init) => {
    const req = new Request(input as any, init);
    const text = await req.clone().text();
    seen.push({
      method: req.method,
      path: new URL(req.url).pathname,
      body: text ? JSON.parse(text) : undefined,
    });
    return fetch(req);
  };
  return { seen, fetch: f };
}

async function signedIn(p = phone()) {
  const rec = recording();
  const api = new UserApiClient({ baseUrl, fetch: rec.fetch });
  await api.signup({ first_name: "Ada", last_name: "Lovelace", phone: p, password });
  await api.login(p, password);
  return { api, rec, p };
}

test("signs up, logs in, reads and changes the profile with typed answers", async () => {
  const { api, p } = await signedIn();
  const me = await api.getUser();
  assert.equal(me.phone, p);
  assert.equal(me._id.$oid, api.session?.userId);
  const changed = await api.updateUser({ last_name: "Byron" });
  assert.equal(changed.last_name, "Byron");
});

test("signs up and logs in by email, whatever the address's case", async () => {
  const email = `ada.${Math.floor(Math.random() * 1e9)}@example.com`;
  const rec = recording();
  const api = new UserApiClient({ baseUrl, fetch: rec.fetch });
  const made = await api.signup({ first_name: "Ada", last_name: "Lovelace", email: email.toUpperCase(), password });
  assert.equal(made.email, email);
  assert.equal(made.phone, undefined);
  await api.login(email, password);
  assert.deepEqual(rec.seen.at(-1)?.body.email, email, "sent as email, not phone");
  assert.equal((await api.getUser()).email, email);
  await assert.rejects(
    api.signup({ first_name: "A", last_name: "B", email: email.toUpperCase(), password }),
    (e: unknown) => e instanceof ApiProblem && e.status === 409 && e.code === "email_taken",
  );
  await api.startRecovery(email);
  assert.deepEqual(rec.seen.at(-1)?.body, { email });
});

test("problem+json answers become ApiProblem with status, code and field errors", async () => {
  const { api, p } = await signedIn();
  await assert.rejects(
    api.signup({ first_name: "A", last_name: "B", phone: p, password }),
    (e: unknown) => e instanceof ApiProblem && e.status === 409 && e.code === "phone_taken",
  );
  await assert.rejects(api.login(p, "not-the-password"), (e: unknown) => {
    return e instanceof ApiProblem && e.status === 401 && e.code === "invalid_credentials";
  });
  await assert.rejects(
    api.signup({ first_name: "", last_name: "B", phone: phone(), password }),
    (e: unknown) =>
      e instanceof ApiProblem &&
      e.code === "validation_failed" &&
      e.errors.some((f) => f.path === "/first_name"),
  );
});

test("an expired access token is renewed once for concurrent calls, then the calls go through", async () => {
  const { api, rec } = await signedIn();
  const before = api.session!;
  api.store.setSession({ ...before, expiresAt: Date.now() - 1 });
  const users = await Promise.all([api.getUser(), api.getUser(), api.getUser()]);
  assert.equal(users.length, 3);
  const refreshes = rec.seen.filter((r) => r.path === "/token/refresh");
  assert.equal(refreshes.length, 1, "one refresh for three calls");
  // (The new JWT may equal the old one to the byte when issued in the same second.)
  assert.ok(api.session!.expiresAt > Date.now(), "the new token's expiry is kept");
  assert.notEqual(api.session!.refreshToken, before.refreshToken, "the refresh token rotates");
});

test("a 401 renews the access token and retries the call once", async () => {
  const { api } = await signedIn();
  const s = api.session!;
  api.store.setSession({ ...s, token: "not.a.jwt" });
  const me = await api.getUser();
  assert.equal(me._id.$oid, s.userId);
});

test("each login sends back this client's device token and keeps the renewed one", async () => {
  const { api, rec, p } = await signedIn();
  const device = api.store.deviceToken();
  assert.match(device ?? "", /^d1\./);
  await api.login(p, password);
  const logins = rec.seen.filter((r) => r.path === "/login");
  assert.equal(logins[0].body.device_token ?? null, null);
  assert.equal(logins[1].body.device_token, device);
  assert.match(api.store.deviceToken() ?? "", /^d1\./);
});

test("logout ends the session: the tokens are forgotten and the old ones get 401", async () => {
  const { api } = await signedIn();
  const old = api.session!;
  await api.logout();
  assert.equal(api.session, null);
  await assert.rejects(api.getUser(), (e: unknown) => e instanceof ApiProblem && e.status === 401);
  api.store.setSession(old);
  await assert.rejects(api.getUser(), (e: unknown) => e instanceof ApiProblem && e.status === 401);
  assert.equal(api.session, null, "a refused refresh forgets the session");
});

/** RFC 6238 (HMAC-SHA1, 30 s, six digits) from Node's own crypto: what an authenticator
 * app computes from the base32 secret, `step` steps from now. */
function totp(secret: string, step = 0): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000) + step));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 1_000_000).padStart(6, "0");
}

/** The challenge a login for an account with a second factor throws. */
async function challengeOf(login: Promise<unknown>): Promise<SecondFactorRequired> {
  const e = await login.then(() => assert.fail("no tokens before the second factor"), (e: unknown) => e);
  assert.ok(e instanceof SecondFactorRequired);
  return e;
}

test("an authenticator app enrols, sign-in then asks for its code, and a recovery code works once", async () => {
  const { api, p } = await signedIn();
  const enrolment = await api.startTotp();
  assert.match(enrolment.otpauth_uri, /^otpauth:\/\/totp\//);
  const { factor, recoveryCodes } = await api.confirmTotp(enrolment.enrolment, totp(enrolment.secret), "Phone");
  assert.equal(factor.kind, "totp");
  assert.equal(factor.label, "Phone");
  assert.equal(recoveryCodes.length, 10);
  assert.equal((await api.listFactors()).aal, 2, "the enrolling session proved both factors");

  const other = new UserApiClient({ baseUrl });
  const challenge = await other.login(p, password).then(
    () => assert.fail("no tokens before the second factor"),
    (e: unknown) => e,
  );
  assert.ok(challenge instanceof SecondFactorRequired);
  assert.deepEqual(challenge.methods, ["totp", "recovery_code"]);
  await assert.rejects(
    other.completeLogin(challenge, { code: "000000" }),
    (e: unknown) => e instanceof ApiProblem && e.code === "invalid_code",
  );
  // The enrolment spent this step's code; the next step's is in the window.
  const session = await other.completeLogin(challenge, { code: totp(enrolment.secret, 1) });
  const claims = JSON.parse(Buffer.from(session.token.split(".")[1], "base64url").toString());
  assert.deepEqual([claims.aal, claims.amr], [2, ["pwd", "otp", "mfa"]]);

  const third = new UserApiClient({ baseUrl });
  const again = await challengeOf(third.login(p, password));
  await third.completeLogin(again, { recoveryCode: recoveryCodes[0] });
  const fourth = new UserApiClient({ baseUrl });
  const once = await challengeOf(fourth.login(p, password));
  await assert.rejects(
    fourth.completeLogin(once, { recoveryCode: recoveryCodes[0] }),
    (e: unknown) => e instanceof ApiProblem && e.code === "invalid_code",
  );
  assert.equal((await third.listFactors()).recovery_codes_left, 9);
});
