/**
 * A typed client for the User API: the request and response types are generated from
 * openapi.yaml (`src/schema.d.ts`, `npm run generate`); this file is the thin hand-written
 * layer an app needs on top: keeping the tokens, renewing the access token with the refresh
 * token (once, shared by concurrent calls) when it expires or a call answers 401, sending the
 * device token back with each login, and turning problem+json answers into `ApiProblem`.
 */
import createFetchClient from "openapi-fetch";
import type { components, paths } from "./schema.js";
import { creationOptions, credentialJson, requestOptions, toBase64Url } from "./webauthn.js";

export type { components, paths } from "./schema.js";
export type User = components["schemas"]["User"];
export type Problem = components["schemas"]["Problem"];
export type ProblemCode = components["schemas"]["ProblemCode"];
export type SignupRequest = components["schemas"]["signup"];
export type ProfileChanges = Omit<components["schemas"]["update_user"], "_id">;
export type Factor = components["schemas"]["Factor"];
export type Factors = components["schemas"]["Factors"];
export type TotpEnrolment = components["schemas"]["TotpEnrolment"];
export type Passkey = components["schemas"]["Passkey"];
export type PasskeyCeremony = components["schemas"]["PasskeyCeremony"];
/** Where a ceremony's credential comes from: `navigator.credentials` in a browser. */
export type Credentials = Pick<CredentialsContainer, "create" | "get">;
export { creationOptions, credentialJson, requestOptions } from "./webauthn.js";
/** A second factor as typed: an authenticator app's code, or one of the recovery codes. */
export type SecondFactorProof = { code: string } | { recoveryCode: string };

/** Thrown by `login` for an account with a second factor: the password was right, and
 * `completeLogin` with a code (or a recovery code) opens the session. */
export class SecondFactorRequired extends Error {
  readonly mfaToken: string;
  /** What completes it: `totp`, `passkey`, `recovery_code`. */
  readonly methods: string[];
  /** Seconds the challenge lives. */
  readonly expiresIn: number;

  constructor(challenge: components["schemas"]["MfaChallenge"]) {
    super("a second factor is required to complete this sign-in");
    this.name = "SecondFactorRequired";
    this.mfaToken = challenge.mfa_token;
    this.methods = challenge.methods;
    this.expiresIn = challenge.expires_in;
  }
}

function proofBody(proof: SecondFactorProof): { code: string } | { recovery_code: string } {
  return "code" in proof ? { code: proof.code } : { recovery_code: proof.recoveryCode };
}

/** An answer that is not a success: the problem+json body, its status and `Retry-After`. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: ProblemCode | string;
  readonly title: string;
  readonly detail: string;
  readonly errors: { path: string; message: string }[];
  /** Seconds to wait (429 and 503 carry it). */
  readonly retryAfter?: number;

  constructor(status: number, body: unknown, retryAfter?: number) {
    const p = (typeof body === "object" && body !== null ? body : {}) as Partial<Problem> & {
      message?: string;
    };
    const detail = p.detail ?? p.message ?? `HTTP ${status}`;
    super(`${status} ${p.code ?? "error"}: ${detail}`);
    this.name = "ApiProblem";
    this.status = status;
    this.code = p.code ?? (status === 401 ? "unauthorized" : "error");
    this.title = p.title ?? "";
    this.detail = detail;
    this.errors = p.errors ?? [];
    this.retryAfter = retryAfter;
  }
}

/** The tokens of one login. */
export interface Session {
  token: string;
  sessionToken: string;
  refreshToken: string;
  /** Milliseconds since the epoch when `token` expires. */
  expiresAt: number;
  userId: string;
}

/** Where the client keeps what it must remember (memory by default; an app may persist it). */
export interface TokenStore {
  session(): Session | null;
  setSession(session: Session | null): void;
  /** The device token of this client's last login (keep it across logouts). */
  deviceToken(): string | null;
  setDeviceToken(token: string): void;
}

/** A store that forgets everything when the page or process ends. */
export function memoryStore(): TokenStore {
  let session: Session | null = null;
  let device: string | null = null;
  return {
    session: () => session,
    setSession: (s) => (session = s),
    deviceToken: () => device,
    setDeviceToken: (t) => (device = t),
  };
}

export interface ClientOptions {
  /** The API's URL, e.g. `http://localhost:8000` for the dev server. */
  baseUrl: string;
  store?: TokenStore;
  fetch?: typeof fetch;
  /** Renew the access token this long before it expires (default 30 s). */
  refreshMarginMs?: number;
}

type Answer = { response: Response; data?: unknown; error?: unknown };

function retryAfter(r: Response): number | undefined {
  const v = r.headers.get("retry-after");
  return v === null || Number.isNaN(Number(v)) ? undefined : Number(v);
}

/** The data of a success, or the answer's `ApiProblem`. */
function take<T>(a: Answer): T {
  if (!a.response.ok) {
    throw new ApiProblem(a.response.status, a.error, retryAfter(a.response));
  }
  return a.data as T;
}

export class UserApiClient {
  /** The generated, fully typed fetch client, for anything this layer does not wrap. */
  readonly raw: ReturnType<typeof createFetchClient<paths>>;
  readonly store: TokenStore;
  private readonly margin: number;
  private readonly baseUrl: string;
  private renewing: Promise<Session> | null = null;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.raw = createFetchClient<paths>({ baseUrl: options.baseUrl, fetch: options.fetch });
    this.store = options.store ?? memoryStore();
    this.margin = options.refreshMarginMs ?? 30_000;
  }

  /** The signed-in session, if any. */
  get session(): Session | null {
    return this.store.session();
  }

  async signup(body: SignupRequest): Promise<User> {
    return take<User>(await this.raw.POST("/signup", { body }));
  }

  /** Logs in with a phone or an email address (anything with an `@`), keeps the tokens, and
   * sends back (and renews) this client's device token. For an account with a second factor
   * it throws `SecondFactorRequired`: finish with `completeLogin`. */
  async login(phoneOrEmail: string, password: string): Promise<Session> {
    const device_token = this.store.deviceToken();
    const identifier = phoneOrEmail.includes("@") ? { email: phoneOrEmail } : { phone: phoneOrEmail };
    const data = take<
      components["schemas"]["LoginResponse"] | components["schemas"]["MfaChallenge"]
    >(await this.raw.POST("/login", { body: { ...identifier, password, device_token } }));
    if ("mfa_required" in data) {
      throw new SecondFactorRequired(data);
    }
    return this.keep(data);
  }

  /** Completes a sign-in `login` answered with `SecondFactorRequired`. A wrong code throws
   * `ApiProblem` (`invalid_code`) and the challenge stays for another try. */
  async completeLogin(
    challenge: SecondFactorRequired | string,
    proof: SecondFactorProof,
  ): Promise<Session> {
    const mfa_token = typeof challenge === "string" ? challenge : challenge.mfaToken;
    const data = take<components["schemas"]["LoginResponse"]>(
      await this.raw.POST("/login/mfa", { body: { mfa_token, ...proofBody(proof) } }),
    );
    return this.keep(data);
  }

  /** Where to send the browser to sign in with `provider` (`location.assign(url)`): it comes
   * back to `redirectUri` (on the API's `FEDERATION_REDIRECT_URLS`) with `?code=` or
   * `?error=`. Keep `verifier` (e.g. in `sessionStorage`) for `finishProviderSignIn`: only
   * it can exchange the code. */
  async providerSignInUrl(
    provider: string,
    redirectUri: string,
  ): Promise<{ url: string; verifier: string }> {
    const verifier = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    const query = new URLSearchParams({
      redirect_uri: redirectUri,
      code_challenge: toBase64Url(digest),
      code_challenge_method: "S256",
    });
    const url = `${this.baseUrl}/federation/${encodeURIComponent(provider)}/authorize?${query}`;
    return { url, verifier };
  }

  /** Completes a browser sign-in with the `code` the redirect target received and the
   * `verifier` of `providerSignInUrl`; as `login`, it throws `SecondFactorRequired` for an
   * account with a second factor, and `ApiProblem` `link_required` where the provider's
   * verified address belongs to another account. */
  async finishProviderSignIn(code: string, verifier?: string): Promise<Session> {
    const data = take<
      components["schemas"]["LoginResponse"] | components["schemas"]["MfaChallenge"]
    >(
      await this.raw.POST("/federation/exchange", {
        body: verifier === undefined ? { code } : { code, code_verifier: verifier },
      }),
    );
    if ("mfa_required" in data) {
      throw new SecondFactorRequired(data);
    }
    return this.keep(data);
  }

  private keep(data: components["schemas"]["LoginResponse"]): Session {
    const session: Session = {
      token: data.token,
      sessionToken: data.session_token,
      refreshToken: data.refresh_token,
      expiresAt: Date.now() + data.expires_in * 1000,
      userId: data.user_id.$oid,
    };
    this.store.setSession(session);
    this.store.setDeviceToken(data.device_token);
    return session;
  }

  /** Renews the access token now (one request however many calls ask at once). */
  refresh(): Promise<Session> {
    this.renewing ??= this.renew().finally(() => (this.renewing = null));
    return this.renewing;
  }

  private async renew(): Promise<Session> {
    const s = this.requireSession();
    const answer = await this.raw.POST("/token/refresh", {
      body: { refresh_token: s.refreshToken },
    });
    if (answer.response.status === 401) {
      this.store.setSession(null);
    }
    const data = take<components["schemas"]["RefreshResponse"]>(answer);
    const next: Session = {
      ...s,
      token: data.token,
      refreshToken: data.refresh_token,
      expiresAt: Date.now() + data.expires_in * 1000,
    };
    this.store.setSession(next);
    return next;
  }

  /** The account's second factors and how many recovery codes are left. */
  async listFactors(): Promise<Factors> {
    return take<Factors>(await this.authed((headers) => this.raw.GET("/mfa", { headers })));
  }

  /** Starts enrolling an authenticator app: show `otpauth_uri` as a QR code (or `secret`). */
  async startTotp(): Promise<TotpEnrolment> {
    return take<TotpEnrolment>(
      await this.authed((headers) => this.raw.POST("/mfa/totp", { headers })),
    );
  }

  /** Finishes enrolling with the app's first code. Answers the recovery codes to show once
   * (with the account's first factor); the session is now at AAL2. */
  async confirmTotp(
    enrolment: string,
    code: string,
    label?: string,
  ): Promise<{ factor: Factor; recoveryCodes: string[] }> {
    const data = take<components["schemas"]["TotpEnrolled"]>(
      await this.authed((headers) =>
        this.raw.POST("/mfa/totp/confirm", { headers, body: { enrolment, code, label } }),
      ),
    );
    this.raise(data.token, data.expires_in);
    return { factor: data.factor, recoveryCodes: data.recovery_codes ?? [] };
  }

  /** Proves a second factor again, for the changes that need a recent one
   * (`step_up_required`). */
  async stepUp(proof: SecondFactorProof): Promise<void> {
    const data = take<components["schemas"]["RaisedSession"]>(
      await this.authed((headers) =>
        this.raw.POST("/session/step-up", { headers, body: proofBody(proof) }),
      ),
    );
    this.raise(data.token, data.expires_in);
  }

  /** Removes a second factor (after a step-up). */
  async removeFactor(id: string): Promise<void> {
    take(
      await this.authed((headers) =>
        this.raw.DELETE("/mfa/factors/{id}", { headers, params: { path: { id } } }),
      ),
    );
  }

  /** Ten new recovery codes (after a step-up); the old ones stop working. */
  async regenerateRecoveryCodes(): Promise<string[]> {
    const data = take<{ recovery_codes: string[] }>(
      await this.authed((headers) => this.raw.POST("/mfa/recovery-codes", { headers })),
    );
    return data.recovery_codes;
  }

  /** Registers a passkey on this device for the signed-in account (after a step-up where it
   * already has a second factor): the browser asks the user to verify. The session is then
   * at AAL2; with the account's first factor, the recovery codes to show once come back. */
  async registerPasskey(
    label?: string,
    credentials: Credentials = navigator.credentials,
  ): Promise<{ factor: Factor; recoveryCodes: string[] }> {
    const start = take<PasskeyCeremony>(
      await this.authed((headers) => this.raw.POST("/passkeys/register/start", { headers })),
    );
    const made = await credentials.create(creationOptions(start.options as never));
    const credential = credentialJson(made) as never;
    const data = take<components["schemas"]["TotpEnrolled"]>(
      await this.authed((headers) =>
        this.raw.POST("/passkeys/register/finish", {
          headers,
          body: { ceremony: start.ceremony, credential, label },
        }),
      ),
    );
    this.raise(data.token, data.expires_in);
    return { factor: data.factor, recoveryCodes: data.recovery_codes ?? [] };
  }

  /** Signs in with a passkey: with no identifier typed, or (given the `SecondFactorRequired`
   * of a password login) as that sign-in's second factor. */
  async signInWithPasskey(
    challenge?: SecondFactorRequired | string,
    credentials: Credentials = navigator.credentials,
  ): Promise<Session> {
    const mfa_token =
      challenge === undefined ? undefined : typeof challenge === "string" ? challenge : challenge.mfaToken;
    const start = take<PasskeyCeremony>(
      await this.raw.POST("/passkeys/login/start", { body: mfa_token ? { mfa_token } : {} }),
    );
    const got = await credentials.get(requestOptions(start.options as never));
    const credential = credentialJson(got) as never;
    const data = take<components["schemas"]["LoginResponse"]>(
      await this.raw.POST("/passkeys/login/finish", {
        body: { ceremony: start.ceremony, credential, mfa_token },
      }),
    );
    return this.keep(data);
  }

  /** Proves one of the account's passkeys again (`step_up_required`). */
  async stepUpWithPasskey(credentials: Credentials = navigator.credentials): Promise<void> {
    const start = take<PasskeyCeremony>(
      await this.authed((headers) => this.raw.POST("/passkeys/step-up/start", { headers })),
    );
    const got = await credentials.get(requestOptions(start.options as never));
    const credential = credentialJson(got) as never;
    const data = take<components["schemas"]["RaisedSession"]>(
      await this.authed((headers) =>
        this.raw.POST("/passkeys/step-up/finish", {
          headers,
          body: { ceremony: start.ceremony, credential },
        }),
      ),
    );
    this.raise(data.token, data.expires_in);
  }

  /** The account's passkeys. */
  async listPasskeys(): Promise<Passkey[]> {
    const data = take<components["schemas"]["Passkeys"]>(
      await this.authed((headers) => this.raw.GET("/passkeys", { headers })),
    );
    return data.passkeys;
  }

  async renamePasskey(id: string, label: string): Promise<Factor> {
    return take<Factor>(
      await this.authed((headers) =>
        this.raw.PATCH("/passkeys/{id}", { headers, params: { path: { id } }, body: { label } }),
      ),
    );
  }

  /** Removes a passkey (after a step-up). */
  async removePasskey(id: string): Promise<void> {
    take(
      await this.authed((headers) =>
        this.raw.DELETE("/passkeys/{id}", { headers, params: { path: { id } } }),
      ),
    );
  }

  /** The session's new access token after its level rose. */
  private raise(token: string, expiresIn: number): void {
    const s = this.requireSession();
    this.store.setSession({ ...s, token, expiresAt: Date.now() + expiresIn * 1000 });
  }

  async getUser(): Promise<User> {
    return take<User>(await this.authed((headers) => this.raw.GET("/user", { headers })));
  }

  /** Changes names, phone or password (`current_password` where the API asks for it). */
  async updateUser(changes: ProfileChanges): Promise<User> {
    const _id = { $oid: this.requireSession().userId };
    return take<User>(
      await this.authed((headers) =>
        this.raw.PUT("/user", { headers, body: { _id, ...changes } }),
      ),
    );
  }

  /** Ends this session (`global`: every session of the user) and forgets the tokens. */
  async logout(options: { global?: boolean } = {}): Promise<void> {
    const body = options.global ? { scope: "global" as const } : undefined;
    const a = await this.authed((headers) => this.raw.POST("/logout", { headers, body }));
    if (a.response.status !== 401) {
      take(a);
    }
    this.store.setSession(null);
  }

  /** Deletes the account; the session ends with it. */
  async deleteAccount(currentPassword: string): Promise<void> {
    take(
      await this.authed((headers) =>
        this.raw.DELETE("/user", { headers, body: { current_password: currentPassword } }),
      ),
    );
    this.store.setSession(null);
  }

  async startPhoneVerification(phone: string): Promise<void> {
    take(await this.raw.POST("/verify/phone/start", { body: { phone } }));
  }

  async confirmPhone(phone: string, code: string): Promise<User> {
    return take<User>(await this.raw.POST("/verify/phone/confirm", { body: { phone, code } }));
  }

  /** Sends a new code and link to an address waiting for proof (202 whatever the address). */
  async startEmailVerification(email: string, locale?: string): Promise<void> {
    take(await this.raw.POST("/verify/email/start", { body: { email, locale } }));
  }

  /** Proves an address with the emailed code. */
  async confirmEmail(email: string, code: string): Promise<User> {
    return take<User>(await this.raw.POST("/verify/email/confirm", { body: { email, code } }));
  }

  /** Proves an address with the token of an emailed link (the `token` query parameter). */
  async confirmEmailLink(token: string): Promise<User> {
    return take<User>(await this.raw.POST("/verify/email/confirm", { body: { token } }));
  }

  /** Starts a password reset by phone or email address (anything with an `@`). */
  async startRecovery(phoneOrEmail: string): Promise<void> {
    const body = phoneOrEmail.includes("@") ? { email: phoneOrEmail } : { phone: phoneOrEmail };
    take(await this.raw.POST("/recover/start", { body }));
  }

  /** Sets a new password with the token of an emailed reset link. */
  async confirmRecoveryLink(token: string, newPassword: string): Promise<void> {
    take(await this.raw.POST("/recover/confirm", { body: { token, new_password: newPassword } }));
  }

  /** Sets a new password with the code sent to a phone or email address. */
  async confirmRecovery(phoneOrEmail: string, code: string, newPassword: string): Promise<void> {
    const who = phoneOrEmail.includes("@") ? { email: phoneOrEmail } : { phone: phoneOrEmail };
    take(
      await this.raw.POST("/recover/confirm", {
        body: { ...who, code, new_password: newPassword },
      }),
    );
  }

  private requireSession(): Session {
    const s = this.store.session();
    if (!s) {
      throw new ApiProblem(401, { code: "unauthorized", detail: "not signed in" });
    }
    return s;
  }

  /** Runs `call` with the session's headers, renewing the access token first when it is
   * about to expire, and once more (then retrying) when the call answers 401. */
  private async authed<A extends Answer>(
    call: (headers: { Authorization: string; "Session-Token": string }) => Promise<A>,
  ): Promise<A> {
    let s = this.requireSession();
    if (s.expiresAt - this.margin <= Date.now()) {
      s = await this.refresh();
    }
    const headers = (x: Session) => ({
      Authorization: `Bearer ${x.token}`,
      "Session-Token": x.sessionToken,
    });
    const first = await call(headers(s));
    if (first.response.status !== 401) {
      return first;
    }
    try {
      s = await this.refresh();
    } catch {
      return first;
    }
    return call(headers(s));
  }
}
