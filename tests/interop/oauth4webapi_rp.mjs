#!/usr/bin/env node
// A relying party and a resource server written with panva's oauth4webapi 3 (the low-level,
// spec-strict OAuth 2.0 / OIDC toolkit under openid-client): discovery, code + PKCE,
// `validateAuthResponse` (state, RFC 9207 iss), the token response and ID token, UserInfo,
// refresh, DPoP (RFC 9449) with or without `dpop_jkt` (`dpop_jkt: false` in the first
// message leaves it out, as the library does by default), and on the resource side
// `validateJwtAccessToken` (RFC 9068 + RFC 6750 + RFC 9449) against the served JWKS.
// Driven by rp_harness.py over JSON lines (same protocol as openid_client_rp.mjs).
import * as oauth from "oauth4webapi";
import { exportJWK, importJWK, SignJWT } from "jose";
import { createHash, randomUUID } from "node:crypto";
import { decodeJwt, main, readMessage, refusal, send } from "./rp_io.mjs";

const insecure = { [oauth.allowInsecureRequests]: true }; // plain http to the loopback server
const RS_URL = "https://rs.example/api/orders";

async function clientAuth(s) {
  switch (s.auth) {
    case "none":
      return oauth.None();
    case "client_secret_basic":
      return oauth.ClientSecretBasic(s.secret);
    case "client_secret_post":
      return oauth.ClientSecretPost(s.secret);
    case "private_key_jwt":
      return oauth.PrivateKeyJwt({ key: await importJWK(s.private_jwk, "ES256"), kid: s.private_jwk.kid });
    default:
      throw new Error(`unknown auth ${s.auth}`);
  }
}

// A resource request as a client would send it: Authorization plus, for DPoP, a proof for
// this method and URL with `ath` (RFC 9449 §4.2, §7).
async function resourceRequest(scheme, token, keyPair) {
  const headers = { authorization: `${scheme} ${token}` };
  if (keyPair) {
    const ath = createHash("sha256").update(token).digest("base64url");
    headers.dpop = await new SignJWT({ htm: "GET", htu: RS_URL, jti: randomUUID(), ath })
      .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: await exportJWK(keyPair.publicKey) })
      .setIssuedAt()
      .sign(keyPair.privateKey);
  }
  return new Request(RS_URL, { headers });
}

await main(async () => {
  const s = await readMessage();
  const issuer = new URL(s.issuer);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: "oidc", ...insecure }),
  );
  const client = { client_id: s.client_id };
  const auth = await clientAuth(s);
  const keyPair = s.dpop ? await oauth.generateKeyPair("ES256") : undefined;
  const DPoP = keyPair ? oauth.DPoP(client, keyPair) : undefined;

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const url = new URL(as.authorization_endpoint);
  const params = {
    client_id: client.client_id,
    response_type: "code",
    redirect_uri: s.redirect_uri,
    scope: s.scope,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  };
  // RFC 9449 §10: dpop_jkt (OPTIONAL) binds the code to the DPoP key; sent unless told not to.
  if (DPoP && s.dpop_jkt !== false) params.dpop_jkt = await DPoP.calculateThumbprint();
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  send({ authorize: url.href });

  const { redirect } = await readMessage();
  const callback = oauth.validateAuthResponse(as, client, new URL(redirect), state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(as, client, auth, callback, s.redirect_uri, verifier, {
      DPoP,
      ...insecure,
    }),
    { expectedNonce: nonce, requireIdToken: true },
  );
  const idClaims = oauth.getValidatedIdTokenClaims(tokens);
  const userinfo = await oauth.processUserInfoResponse(
    as,
    client,
    idClaims.sub,
    await oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure }),
  );
  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP, ...insecure }),
  );

  // Resource server side: RFC 9068 validation of both access tokens for the API audience.
  const scheme = DPoP ? "DPoP" : "Bearer";
  const rs = async (token, opts = {}) =>
    oauth.validateJwtAccessToken(as, await resourceRequest(scheme, token, keyPair), s.audience, {
      ...insecure,
      ...opts,
    });
  const atClaims = await rs(tokens.access_token, { requireDPoP: Boolean(DPoP) });
  const refreshedAtClaims = await rs(refreshed.access_token, { requireDPoP: Boolean(DPoP) });

  // The ID token is not an access token: refused by UserInfo and by the RS validation.
  const idTokenAtUserinfo = await refusal(async () =>
    oauth.processUserInfoResponse(
      as,
      client,
      idClaims.sub,
      await oauth.userInfoRequest(as, client, tokens.id_token, { DPoP, ...insecure }),
    ),
  );
  const idTokenAtRs = await refusal(async () =>
    oauth.validateJwtAccessToken(as, await resourceRequest("Bearer", tokens.id_token), s.audience, insecure),
  );
  const idTokenAtRsForClient = await refusal(async () =>
    oauth.validateJwtAccessToken(as, await resourceRequest("Bearer", tokens.id_token), s.client_id, insecure),
  );
  // A DPoP-bound access token without its proof is refused (RFC 9449 §7.1).
  const boundAsBearer = DPoP
    ? await refusal(async () =>
        oauth.validateJwtAccessToken(as, await resourceRequest("Bearer", tokens.access_token), s.audience, insecure),
      )
    : null;

  send({
    result: {
      dpop_jkt: params.dpop_jkt ?? null,
      dpop_key_jkt: DPoP ? await DPoP.calculateThumbprint() : null,
      token_type: tokens.token_type,
      scope: tokens.scope,
      id_claims: idClaims,
      userinfo,
      access_header: decodeJwt(tokens.access_token).header,
      at_claims: atClaims,
      refreshed: { token_type: refreshed.token_type, scope: refreshed.scope, at_claims: refreshedAtClaims },
      id_token_at_userinfo: idTokenAtUserinfo,
      id_token_at_rs: idTokenAtRs,
      id_token_at_rs_for_client: idTokenAtRsForClient,
      bound_as_bearer: boundAsBearer,
    },
  });
});
