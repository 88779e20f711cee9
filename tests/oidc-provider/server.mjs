// A local OpenID Connect provider for the federation tests: oauth2-mock-server serves the
// discovery document, the JWKS, /authorize and /token on one port (the issuer); a control
// port beside it mints ID tokens with the claims a test asks for, rotates the signing key,
// and signs with a key the provider never published. Prints one JSON line with both URLs.
//
// For the browser flow it is as strict as a real provider where the mock is lenient: a code
// is redeemed once, a code issued with a PKCE challenge needs its verifier, and a client
// secret, once set (`/client-secret`), must be sent, or, as Sign in with Apple wants
// (`/apple-client-secret`), be an ES256 JWT the team's key signed. `/login` sets the claims of the ID
// tokens the code exchange issues (the person who "signs in" at /authorize next).
import http from "node:http";
import { createPublicKey, verify } from "node:crypto";
import { OAuth2Server } from "oauth2-mock-server";
import { SignJWT, generateKeyPair } from "jose";

const server = new OAuth2Server();
let current = await server.issuer.keys.generate("RS256");
await server.start(0, "127.0.0.1");
const rogue = await generateKeyPair("RS256");

let login = { claims: {}, remove: [] };
let clientSecret = null;
// Sign in with Apple's rule for the client secret: an ES256 JWT by the team's key.
let appleKey = null;
function appleSecretOk(jwt) {
  const [h, c, sig] = String(jwt ?? "").split(".");
  if (!sig) return false;
  const json = (part) => JSON.parse(Buffer.from(part, "base64url").toString());
  const header = json(h);
  const claims = json(c);
  const now = Math.floor(Date.now() / 1000);
  const signed = verify("sha256", Buffer.from(`${h}.${c}`), { key: appleKey.publicKey, dsaEncoding: "ieee-p1363" }, Buffer.from(sig, "base64url"));
  return signed && header.alg === "ES256" && header.kid === appleKey.key_id && claims.iss === appleKey.team_id
    && claims.sub === appleKey.client_id && claims.aud === "https://appleid.apple.com"
    && claims.iat <= now + 60 && claims.exp > now && claims.exp - claims.iat <= 15777000;
}
const challenged = new Set();
const redeemed = new Set();
server.service.on("beforeAuthorizeRedirect", ({ url }, req) => {
  if (req.query.code_challenge) challenged.add(url.searchParams.get("code"));
});
server.service.on("beforeTokenSigning", (token, req) => {
  if (req.body?.grant_type !== "authorization_code") return;
  Object.assign(token.payload, login.claims);
  for (const k of login.remove) delete token.payload[k];
});
server.service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  if (body.grant_type !== "authorization_code") return;
  const refuse = (error) => {
    response.statusCode = error === "invalid_client" ? 401 : 400;
    response.body = { error };
  };
  if (redeemed.has(body.code)) return refuse("invalid_grant");
  redeemed.add(body.code);
  if (challenged.has(body.code) && !body.code_verifier) return refuse("invalid_grant");
  if (clientSecret !== null && body.client_secret !== clientSecret) return refuse("invalid_client");
  if (appleKey !== null && !appleSecretOk(body.client_secret)) return refuse("invalid_client");
});

async function handle(path, p) {
  switch (path) {
    case "/id-token": {
      // {claims: {...}, remove: ["nonce"], expires_in: 300, kid: "..."}
      return {
        id_token: await server.issuer.buildToken({
          kid: p.kid ?? current.kid,
          expiresIn: p.expires_in ?? 300,
          scopesOrTransform: (_header, payload) => {
            Object.assign(payload, p.claims ?? {});
            for (const k of p.remove ?? []) delete payload[k];
          },
        }),
      };
    }
    case "/login": {
      // {claims: {...}, remove: ["email"]}
      login = { claims: p.claims ?? {}, remove: p.remove ?? [] };
      return {};
    }
    case "/client-secret": {
      clientSecret = p.secret ?? null;
      return {};
    }
    case "/apple-client-secret": {
      // {pem, key_id, team_id, client_id}: the code exchange needs a client secret signed so
      appleKey = { ...p, publicKey: createPublicKey(p.pem) };
      return {};
    }
    case "/rotate": {
      current = await server.issuer.keys.generate("RS256");
      return { kid: current.kid };
    }
    case "/rogue-id-token": {
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ iss: server.issuer.url, iat: now, exp: now + 300, ...(p.claims ?? {}) })
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: p.kid ?? "never-published" })
        .sign(rogue.privateKey);
      return { id_token: token };
    }
    default:
      return null;
  }
}

const control = http.createServer(async (req, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  try {
    const answer = await handle(req.url, body ? JSON.parse(body) : {});
    res.writeHead(answer ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify(answer ?? { error: "no such route" }));
  } catch (e) {
    res.writeHead(500, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: String(e) }));
  }
});
control.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ issuer: server.issuer.url, control: `http://127.0.0.1:${control.address().port}` }));
});
// Ends with the test that started it (its stdin closes).
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
