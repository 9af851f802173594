#!/usr/bin/env node
// A relying party written with panva's openid-client 6 (strict OIDC/OAuth 2.0 client):
// discovery, authorization code + PKCE (S256) with state and nonce, RFC 9207 `iss` check,
// ID token validation, UserInfo, refresh, optional DPoP (RFC 9449, `dpop_jkt`), and each
// client authentication method. Driven by rp_harness.py over JSON lines:
//
// stdin 1: {issuer, client_id, redirect_uri, scope, auth: "none" | "client_secret_basic" |
//           "client_secret_post" | "private_key_jwt", secret?, private_jwk?, dpop?: bool,
//           dpop_jkt?: false (DPoP without binding the code)}
// stdout:  {"authorize": url}
// stdin 2: {"redirect": url}
// stdout:  {"result": {...}}  or  {"error": {...}} (exit 1)
import * as client from "openid-client";
import { importJWK } from "jose";
import { decodeJwt, main, readMessage, refusal, send } from "./rp_io.mjs";

async function clientAuth(s) {
  switch (s.auth) {
    case "none":
      return client.None();
    case "client_secret_basic":
      return client.ClientSecretBasic(s.secret);
    case "client_secret_post":
      return client.ClientSecretPost(s.secret);
    case "private_key_jwt": {
      const key = await importJWK(s.private_jwk, "ES256");
      return client.PrivateKeyJwt({ key, kid: s.private_jwk.kid });
    }
    default:
      throw new Error(`unknown auth ${s.auth}`);
  }
}

await main(async () => {
  const s = await readMessage();
  const config = await client.discovery(
    new URL(s.issuer),
    s.client_id,
    {},
    await clientAuth(s),
    { execute: [client.allowInsecureRequests] }, // plain http to the loopback test server
  );
  const dpop = s.dpop ? client.getDPoPHandle(config, await client.randomDPoPKeyPair("ES256")) : undefined;
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: s.redirect_uri,
    scope: s.scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  };
  // RFC 9449 §10: dpop_jkt binds the code to the DPoP key (sent unless told not to).
  if (dpop && s.dpop_jkt !== false) params.dpop_jkt = await dpop.calculateThumbprint();
  send({ authorize: client.buildAuthorizationUrl(config, params).href });

  const { redirect } = await readMessage();
  const tokens = await client.authorizationCodeGrant(
    config,
    new URL(redirect),
    { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    undefined,
    { DPoP: dpop },
  );
  const idClaims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub, { DPoP: dpop });
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop });
  const userinfoAfterRefresh = await client.fetchUserInfo(config, refreshed.access_token, idClaims.sub, {
    DPoP: dpop,
  });
  // The ID token is not an access token: UserInfo must refuse it (OIDC Core §5.3.1).
  const idTokenAtUserinfo = await refusal(() =>
    client.fetchUserInfo(config, tokens.id_token, idClaims.sub, { DPoP: dpop }),
  );
  send({
    result: {
      dpop_jkt: params.dpop_jkt ?? null,
      // The thumbprint of the DPoP key used at the token endpoint (sent as dpop_jkt or not).
      dpop_key_jkt: dpop ? await dpop.calculateThumbprint() : null,
      token_type: tokens.token_type,
      scope: tokens.scope,
      expires_in: tokens.expiresIn(),
      id_claims: idClaims,
      access_token: tokens.access_token,
      access_header: decodeJwt(tokens.access_token).header,
      access_claims: decodeJwt(tokens.access_token).claims,
      id_token: tokens.id_token,
      userinfo,
      refreshed: {
        token_type: refreshed.token_type,
        scope: refreshed.scope,
        rotated: typeof refreshed.refresh_token === "string" && refreshed.refresh_token !== tokens.refresh_token,
        access_token: refreshed.access_token,
        access_claims: decodeJwt(refreshed.access_token).claims,
      },
      userinfo_after_refresh: userinfoAfterRefresh,
      id_token_at_userinfo: idTokenAtUserinfo,
    },
  });
});
