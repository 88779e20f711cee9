// A local OpenID Connect provider for the federation tests: oauth2-mock-server serves the
// discovery document, the JWKS, /authorize and /token on one port (the issuer); a control
// port beside it mints ID tokens with the claims a test asks for, rotates the signing key,
// and signs with a key the provider never published. Prints one JSON line with both URLs.
import http from "node:http";
import { OAuth2Server } from "oauth2-mock-server";
import { SignJWT, generateKeyPair } from "jose";

const server = new OAuth2Server();
let current = await server.issuer.keys.generate("RS256");
await server.start(0, "127.0.0.1");
const rogue = await generateKeyPair("RS256");

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
