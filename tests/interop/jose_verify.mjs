#!/usr/bin/env node
// RFC 9068 validation of did-auth tokens with panva's jose 6, as a resource server written
// in JavaScript would do it: `jwtVerify` against the served JWKS (createRemoteJWKSet) with
// issuer, audience, `typ` and algorithm pinned.
//
// stdin:  {"jwks_uri", "issuer", "cases": [{"name", "token", "audience", "typ",
//          "requiredClaims"?}], "thumbprints"?: {"name": <public JWK>}}
// stdout: {"cases": {name: {"ok": true, "header", "payload"} | {"ok": false, "code",
//          "message", "claim"?, "reason"?}}, "thumbprints": {name: <RFC 7638 SHA-256>}}
import { calculateJwkThumbprint, createRemoteJWKSet, jwtVerify } from "jose";
import { main, readMessage, send } from "./rp_io.mjs";

await main(async () => {
  const input = await readMessage();
  const jwks = createRemoteJWKSet(new URL(input.jwks_uri), { timeoutDuration: 10_000 });
  const cases = {};
  for (const c of input.cases) {
    try {
      const { payload, protectedHeader } = await jwtVerify(c.token, jwks, {
        issuer: input.issuer,
        audience: c.audience,
        typ: c.typ,
        algorithms: ["ES256"],
        requiredClaims: c.requiredClaims ?? [],
        clockTolerance: 5,
      });
      cases[c.name] = { ok: true, header: protectedHeader, payload };
    } catch (err) {
      cases[c.name] = { ok: false, code: err.code, message: err.message, claim: err.claim, reason: err.reason };
    }
  }
  const thumbprints = {};
  for (const [name, jwk] of Object.entries(input.thumbprints ?? {})) {
    thumbprints[name] = await calculateJwkThumbprint(jwk, "sha256");
  }
  send({ cases, thumbprints });
});
