/**
 * The browser's side of a passkey ceremony: the API's options (JSON, binary fields base64url)
 * turned into what `navigator.credentials.create/get` take, and the `PublicKeyCredential`
 * they answer turned back into JSON for the finish route. Written out rather than using
 * `PublicKeyCredential.parseCreationOptionsFromJSON` / `toJSON()`, which not every browser
 * in use has yet.
 */

/** base64url (no padding) of `bytes`. */
export function toBase64Url(bytes: ArrayBuffer | ArrayBufferView): string {
  const b =
    bytes instanceof ArrayBuffer
      ? new Uint8Array(bytes)
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The bytes of base64url (or base64) `text`. */
export function fromBase64Url(text: string): ArrayBuffer {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const s = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out.buffer;
}

type Json = Record<string, unknown>;
type Descriptor = { type: string; id: string; transports?: string[] };

function descriptors(list: unknown): PublicKeyCredentialDescriptor[] | undefined {
  if (!Array.isArray(list)) return undefined;
  return (list as Descriptor[]).map((d) => ({
    type: "public-key",
    id: fromBase64Url(d.id),
    transports: d.transports as AuthenticatorTransport[] | undefined,
  }));
}

/** `navigator.credentials.create()` options from the API's `options.publicKey`. */
export function creationOptions(options: { publicKey: Json }): CredentialCreationOptions {
  const pk = options.publicKey;
  const user = pk.user as Json;
  return {
    publicKey: {
      ...(pk as unknown as PublicKeyCredentialCreationOptions),
      challenge: fromBase64Url(pk.challenge as string),
      user: { ...(user as unknown as PublicKeyCredentialUserEntity), id: fromBase64Url(user.id as string) },
      excludeCredentials: descriptors(pk.excludeCredentials),
    },
  };
}

/** `navigator.credentials.get()` options from the API's `options.publicKey`. */
export function requestOptions(options: { publicKey: Json }): CredentialRequestOptions {
  const pk = options.publicKey;
  return {
    publicKey: {
      ...(pk as unknown as PublicKeyCredentialRequestOptions),
      challenge: fromBase64Url(pk.challenge as string),
      allowCredentials: descriptors(pk.allowCredentials),
    },
  };
}

/** The JSON a finish route takes, from the `PublicKeyCredential` the browser answered. */
export function credentialJson(credential: Credential | null): Json {
  const c = credential as PublicKeyCredential | null;
  if (!c || c.type !== "public-key") {
    throw new Error("the browser returned no passkey");
  }
  const r = c.response as AuthenticatorAttestationResponse & AuthenticatorAssertionResponse;
  const response: Json = { clientDataJSON: toBase64Url(r.clientDataJSON) };
  if ("attestationObject" in r && r.attestationObject) {
    response.attestationObject = toBase64Url(r.attestationObject);
    if (typeof r.getTransports === "function") response.transports = r.getTransports();
  } else {
    response.authenticatorData = toBase64Url(r.authenticatorData);
    response.signature = toBase64Url(r.signature);
    if (r.userHandle) response.userHandle = toBase64Url(r.userHandle);
  }
  return {
    id: c.id,
    rawId: toBase64Url(c.rawId),
    type: c.type,
    response,
    extensions: {},
  };
}
