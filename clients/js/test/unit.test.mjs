// Unit tests of the package, checked against independent implementations where one exists:
// the npm `siwe` package (EIP-4361 text), ethers (Keccak-256, EIP-55), `jose` (JWS
// verification, RFC 7638 thumbprints) and node:crypto (SHA-256).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { SiweMessage } from "siwe";
import { Wallet, getAddress, hexlify, keccak256 as ethersKeccak, randomBytes } from "ethers";
import { EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify } from "jose";
import {
  DidAuthClient,
  DidAuthError,
  DpopKey,
  buildSiweMessage,
  challengeError,
  connectWallet,
  createPkce,
  decodeJwt,
  discoverWallets,
  htuOf,
  keccak256,
  toChecksumAddress,
  toHex,
  walletError,
  watchWallets,
} from "@did-auth/client";

const sha256b64url = (text) => createHash("sha256").update(text).digest("base64url");
const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const ISS = "https://auth.example";
const API = "https://api.example";

function fakeJwt(claims) {
  return `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.c2ln`;
}

describe("EIP-4361 message", () => {
  const wallet = Wallet.createRandom();
  const base = {
    domain: "127.0.0.1:8000", address: wallet.address, uri: "http://127.0.0.1:8000/signin", version: "1",
    chainId: 31337, nonce: "abcdefgh12345678", issuedAt: "2026-11-28T12:00:00.000Z",
  };

  test("the text equals the npm siwe package's, with and without optional fields", () => {
    const cases = [
      { statement: "Sign in to the demo.", requestId: "req-1_a", resources: ["urn:recap:eyJhdHQiOnt9fQ", "https://example.com/x"] },
      {},
      { statement: "Hi.", expirationTime: "2026-11-28T12:05:00.000Z", notBefore: "2026-11-28T12:00:00.000Z" },
      { scheme: "https", statement: "With a scheme: https://x.example/?a=b&c=[d]!" },
    ];
    for (const c of cases) {
      const fields = { ...base, ...c };
      assert.equal(buildSiweMessage(fields), new SiweMessage(fields).prepareMessage());
    }
  });

  test("fields outside the EIP's ABNF are refused before anything is signed", () => {
    const bad = [
      { nonce: "short1" },
      { nonce: "abcdefgh-1234" },
      { statement: "two\nlines" },
      { statement: "no quotes \"here\"" },
      { statement: "no ünicode" },
      { version: "2" },
      { address: "0x1234" },
      { uri: "http://a.example/ x" },
      { issuedAt: "yesterday" },
      { chainId: -1 },
      { domain: "" },
    ];
    for (const over of bad) assert.throws(() => buildSiweMessage({ ...base, ...over }), /SIWE message/, JSON.stringify(over));
  });

  test("Keccak-256 and EIP-55 agree with ethers", () => {
    for (const n of [0, 1, 135, 136, 137, 272]) {
      const bytes = randomBytes(n);
      assert.equal("0x" + toHex(keccak256(bytes)), ethersKeccak(bytes));
    }
    for (let i = 0; i < 50; i++) {
      const address = getAddress(hexlify(randomBytes(20)));
      assert.equal(toChecksumAddress(address.toLowerCase()), address);
    }
    assert.throws(() => toChecksumAddress("0xzz"), (e) => e instanceof DidAuthError && e.code === "no_account");
  });
});

describe("DPoP key and proofs (RFC 9449)", () => {
  test("the private key is non-extractable: exportKey throws in every format", async () => {
    const key = await DpopKey.generate();
    assert.equal(key.keyPair.privateKey.extractable, false);
    for (const format of ["jwk", "pkcs8"]) {
      await assert.rejects(crypto.subtle.exportKey(format, key.keyPair.privateKey));
    }
    assert.deepEqual(Object.keys(key.publicJwk).sort(), ["crv", "kty", "x", "y"]);
    assert.equal(key.thumbprint, await calculateJwkThumbprint(key.publicJwk, "sha256"));
  });

  test("a proof verifies with jose; header and claims per §4.2; ath is the token's SHA-256", async () => {
    const key = await DpopKey.generate();
    const token = "eyJ.access.token";
    const proof = await key.proof({ method: "post", url: `${API}/orders?limit=5#top`, accessToken: token });
    const header = decodeProtectedHeader(proof);
    assert.equal(header.typ, "dpop+jwt");
    assert.equal(header.alg, "ES256");
    assert.equal(header.jwk.d, undefined, "no private key in the header");
    const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: "dpop+jwt", algorithms: ["ES256"] });
    assert.equal(payload.htm, "POST");
    assert.equal(payload.htu, `${API}/orders`, "htu without query and fragment");
    assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 5);
    assert.equal(payload.ath, sha256b64url(token));
    assert.ok(Buffer.from(payload.jti, "base64url").length >= 12, "jti of at least 96 bits");
    assert.equal(payload.nonce, undefined);
    const other = await jwtVerify(await key.proof({ method: "GET", url: API }), EmbeddedJWK);
    assert.notEqual(other.payload.jti, payload.jti);
    assert.equal(other.payload.ath, undefined, "no ath without an access token");
    assert.equal(htuOf("HTTPS://API.example:443/a/b?q"), "https://api.example/a/b");
  });

  test("a stored key pair is rebuilt; extractable or non-P-256 keys are refused", async () => {
    const key = await DpopKey.generate();
    const again = await DpopKey.fromKeyPair(key.keyPair);
    assert.equal(again.thumbprint, key.thumbprint);
    const extractable = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    await assert.rejects(DpopKey.fromKeyPair(extractable), /non-extractable/);
    const p384 = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, false, ["sign", "verify"]);
    await assert.rejects(DpopKey.fromKeyPair(p384), /P-256/);
  });

  test("server nonces are remembered per origin and go into later proofs to that origin only", async () => {
    const key = await DpopKey.generate();
    key.rememberNonce(`${ISS}/token`, new Response(null, { headers: { "DPoP-Nonce": "n-1" } }));
    const claims = async (url) => (await jwtVerify(await key.proof({ method: "POST", url }), EmbeddedJWK)).payload;
    assert.equal((await claims(`${ISS}/siwe/verify`)).nonce, "n-1");
    assert.equal((await claims(`${API}/orders`)).nonce, undefined);
  });
});

describe("Session.fetch", () => {
  async function session({ dpop = false, respond }) {
    const calls = [];
    const fetchImpl = async (url, init = {}) => {
      const call = { url: String(url), init, headers: new Headers(init.headers) };
      calls.push(call);
      return respond(call, calls);
    };
    const client = new DidAuthClient({ issuer: ISS, clientId: "c", fetchImpl, dpop: dpop ? await DpopKey.generate() : undefined });
    const tokens = { access_token: fakeJwt({ exp: Date.now() / 1000 + 300 }), refresh_token: "r1", token_type: dpop ? "DPoP" : "Bearer", expires_in: 300 };
    return { s: client.session(tokens), calls };
  }
  const refreshed = (n) => json(200, { access_token: fakeJwt({ n }), refresh_token: `r${n + 1}`, token_type: "Bearer", expires_in: 300 });

  test("a resource's 401 use_dpop_nonce is retried once with its DPoP-Nonce; a second demand is returned", async () => {
    const { s, calls } = await session({
      dpop: true,
      respond: (call) => {
        const claims = decodeJwt(call.headers.get("dpop"));
        if (call.url.endsWith("/account") && claims.nonce === "rs-nonce") return json(200, { ok: true });
        return json(401, { error: "use_dpop_nonce" }, {
          "WWW-Authenticate": 'DPoP error="use_dpop_nonce", error_description="nonce", algs="ES256"',
          "DPoP-Nonce": "rs-nonce",
        });
      },
    });
    assert.equal((await s.fetch(`${API}/account`)).status, 200);
    assert.equal(calls.length, 2);
    assert.match(calls[0].headers.get("authorization"), /^DPoP /);
    assert.equal(decodeJwt(calls[1].headers.get("dpop")).ath, sha256b64url(s.accessToken));
    calls.length = 0;
    assert.equal((await s.fetch(`${API}/other`)).status, 401, "not retried forever");
    assert.equal(calls.length, 2);
  });

  test("401 invalid_token: one refresh, one retry, then the answer is returned", async () => {
    const { s, calls } = await session({
      respond: (call) => (call.url.endsWith("/token")
        ? refreshed(1)
        : json(401, { error: "invalid_token" }, { "WWW-Authenticate": 'Bearer error="invalid_token"' })),
    });
    assert.equal((await s.fetch(`${API}/account`, { method: "POST", body: "{}" })).status, 401);
    assert.deepEqual(calls.map((c) => c.url), [`${API}/account`, `${ISS}/token`, `${API}/account`]);
    assert.equal(calls[2].init.body, "{}", "the body is sent again");
    assert.equal(new URLSearchParams(calls[1].init.body).get("refresh_token"), "r1");
    assert.equal(s.refreshToken, "r2");
  });

  test("401 insufficient_user_authentication (RFC 9470) is not answered by a refresh", async () => {
    const { s, calls } = await session({
      respond: () => json(401, {}, { "WWW-Authenticate": 'Bearer error="insufficient_user_authentication", max_age="300"' }),
    });
    assert.equal((await s.fetch(`${API}/withdrawals`)).status, 401);
    assert.equal(calls.length, 1);
  });

  test("a failed refresh rejects with the server's error; a Request input is replayed", async () => {
    const { s } = await session({
      respond: (call) => (call.url.endsWith("/token")
        ? json(400, { error: "invalid_grant", error_description: "refresh token revoked" })
        : json(401, {}, { "WWW-Authenticate": 'Bearer error="invalid_token"' })),
    });
    await assert.rejects(s.fetch(new Request(`${API}/orders`, { method: "POST", body: "x" })), (err) => {
      assert.ok(err instanceof DidAuthError);
      assert.equal(err.error, "invalid_grant");
      assert.equal(err.errorDescription, "refresh token revoked");
      assert.equal(err.status, 400);
      return true;
    });
  });

  test("challengeError reads the error of the challenge, whatever the scheme", () => {
    const r = (h) => new Response(null, { status: 401, headers: h ? { "WWW-Authenticate": h } : {} });
    assert.equal(challengeError(r('DPoP error="use_dpop_nonce", algs="ES256"')), "use_dpop_nonce");
    assert.equal(challengeError(r('Bearer realm="x", error="invalid_token", error_description="expired"')), "invalid_token");
    assert.equal(challengeError(r('Bearer realm="did-auth", DPoP algs="ES256"')), undefined);
    assert.equal(challengeError(r(null)), undefined);
  });
});

describe("wallets (EIP-1193, EIP-6963)", () => {
  const provider = { request: async () => null };
  const announcer = (target, infos) => target.addEventListener("eip6963:requestProvider", () => {
    for (const info of infos) {
      const ev = new Event("eip6963:announceProvider");
      ev.detail = { info, provider };
      target.dispatchEvent(ev);
    }
  });

  test("discoverWallets dispatches requestProvider, keeps one per uuid, drops non-image icons", async () => {
    const target = new EventTarget();
    target.ethereum = provider;
    announcer(target, [
      { uuid: "u1", name: "One", icon: "javascript:alert(1)", rdns: "x.one" },
      { uuid: "u1", name: "Again", icon: "", rdns: "x.one" },
    ]);
    const wallets = await discoverWallets({ timeoutMs: 20, target });
    assert.deepEqual(wallets.map((w) => [w.id, w.name, w.icon]), [["u1", "One", ""]]);
    assert.equal((await discoverWallets({ timeoutMs: 5, target: new EventTarget() })).length, 0);
  });

  test("watchWallets sees a wallet that announces itself later, until stopped", () => {
    const target = new EventTarget();
    const seen = [];
    const stop = watchWallets((w) => seen.push(w.name), { target });
    const late = (name) => {
      const ev = new Event("eip6963:announceProvider");
      ev.detail = { info: { uuid: name, name, icon: "data:image/png;base64,AA==", rdns: "r" }, provider };
      target.dispatchEvent(ev);
    };
    late("Late");
    stop();
    late("After stop");
    assert.deepEqual(seen, ["Late"]);
  });

  test("wallet errors in words; the wrong chain is switched or explained", async () => {
    assert.equal(walletError({ code: 4001 }).code, "user_rejected");
    assert.equal(walletError({ code: -32002 }).code, "wallet_busy");
    await assert.rejects(connectWallet(undefined), (e) => e.code === "wallet_missing");
    const address = Wallet.createRandom().address;
    const stuck = { async request({ method }) {
      if (method === "eth_requestAccounts") return [address.toLowerCase()];
      if (method === "eth_chainId") return "0x5";
      throw Object.assign(new Error("Unrecognized chain"), { code: 4902 });
    } };
    await assert.rejects(connectWallet(stuck, { chainIds: [31337] }), (e) => e.code === "wrong_chain" && /chain 5/.test(e.message));
    const switches = { chain: "0x5", async request({ method }) {
      if (method === "eth_requestAccounts") return [address.toLowerCase()];
      if (method === "eth_chainId") return this.chain;
      this.chain = "0x7a69";
      return null;
    } };
    assert.deepEqual(await connectWallet(switches, { chainIds: [31337] }), { address, chainId: 31337 });
  });
});

describe("OpenID Connect code flow (public client)", () => {
  test("PKCE S256: the challenge is BASE64URL(SHA256(verifier))", async () => {
    const { verifier, challenge, method } = await createPkce();
    assert.match(verifier, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(challenge, sha256b64url(verifier));
    assert.equal(method, "S256");
  });

  test("the authorization URL carries PKCE, state, nonce, and dpop_jkt for a DPoP client", async () => {
    const key = await DpopKey.generate();
    const client = new DidAuthClient({ issuer: ISS + "/", clientId: "c", scope: "account:read", audience: "api", dpop: key });
    const { url, request } = await client.authorizationRequest({ redirectUri: "https://app.example/cb" });
    const q = new URL(url).searchParams;
    assert.equal(new URL(url).origin + new URL(url).pathname, `${ISS}/authorize`);
    assert.equal(q.get("scope"), "openid account:read");
    assert.equal(q.get("code_challenge"), sha256b64url(request.verifier));
    assert.equal(q.get("code_challenge_method"), "S256");
    assert.equal(q.get("state"), request.state);
    assert.equal(q.get("nonce"), request.nonce);
    assert.equal(q.get("dpop_jkt"), key.thumbprint);
  });

  test("the answer is checked: state, iss, error, then the ID token's nonce, aud and iss", async () => {
    let idToken;
    const fetchImpl = async () => json(200, { access_token: "a", token_type: "Bearer", id_token: idToken });
    const client = new DidAuthClient({ issuer: ISS, clientId: "c", fetchImpl });
    const { request } = await client.authorizationRequest({ redirectUri: "https://app.example/cb" });
    const answer = (extra) => new URLSearchParams({ state: request.state, iss: ISS, code: "k", ...extra });
    await assert.rejects(client.finishAuthorization(answer({ state: "other" }), request), (e) => e.code === "state");
    await assert.rejects(client.finishAuthorization(answer({ iss: "https://evil.example" }), request), (e) => e.code === "iss");
    await assert.rejects(client.finishAuthorization(answer({ error: "access_denied" }), request),
      (e) => e.code === "access_denied" && e.error === "access_denied" && /cancelled/.test(e.message));
    idToken = fakeJwt({ nonce: "other", aud: "c", iss: ISS, sub: "did:pkh:eip155:1:0x0" });
    await assert.rejects(client.finishAuthorization(answer(), request), (e) => e.code === "id_token");
    idToken = fakeJwt({ nonce: request.nonce, aud: "c", iss: ISS, sub: "did:pkh:eip155:1:0x0" });
    const { tokens, idTokenClaims } = await client.finishAuthorization(answer(), request);
    assert.equal(tokens.access_token, "a");
    assert.equal(idTokenClaims.sub, "did:pkh:eip155:1:0x0");
    // location.search and the whole redirect URL are read the same way.
    assert.equal((await client.finishAuthorization(`?${answer()}`, request)).idTokenClaims.sub, idTokenClaims.sub);
    assert.equal((await client.finishAuthorization(`https://app.example/cb?${answer()}`, request)).tokens.access_token, "a");
  });

  test("server refusals keep error and error_description; nonce and rate-limit refusals in words", async () => {
    let answer;
    const client = new DidAuthClient({ issuer: ISS, clientId: "c", fetchImpl: async () => answer });
    answer = json(400, { error: "invalid_grant", error_description: "nonce unknown, expired or already used" });
    await assert.rejects(client.verify({ message: "m", signature: "0x00" }),
      (e) => e.code === "nonce_expired" && e.error === "invalid_grant" && /Try again/.test(e.message));
    answer = json(429, { error: "slow_down", error_description: "too many" }, { "Retry-After": "3" });
    await assert.rejects(client.nonce(), (e) => e.code === "rate_limited" && e.error === "slow_down" && e.status === 429);
    answer = json(400, { error: "invalid_request", error_description: "This sign-in request expired or was already used: go back" });
    await assert.rejects(client.completeAuthorization({ requestId: "r", message: "m", signature: "s" }),
      (e) => e.code === "request_expired" && e.error === "invalid_request");
  });
});
