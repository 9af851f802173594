// The package against real servers: did-auth (embedded defaults), the example trading API
// (did_auth_verifier) and a did-auth demanding DPoP nonces. The wallet is an ethers Wallet
// behind an EIP-1193 provider, found through EIP-6963 discovery.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SiweMessage } from "siwe";
import { Wallet } from "ethers";
import { DidAuthClient, DidAuthError, DpopKey, discoverWallets, signIn } from "@did-auth/client";
import { liveServers } from "../test-support/servers.mjs";
import { recordingFetch, walletProvider } from "../test-support/wallet.mjs";

// The dApp's page, as the wallet's message names it (the demo client accepts loopback
// origins on any port).
const PAGE = { domain: "127.0.0.1:3000", uri: "http://127.0.0.1:3000/" };
const SCOPE = "account:read trade:write";

let servers;
before(async () => {
  servers = await liveServers();
});
after(() => servers?.stop());

function options(extra = {}) {
  return { issuer: servers.issuer, clientId: "demo", audience: "trading-api", scope: SCOPE, ...PAGE,
           statement: "Sign in to the test dApp.", ...extra };
}

async function eventually(check, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("Bearer sign-in", () => {
  test("EIP-6963 wallet, SIWE with the server's nonce, API call, refresh rotation, revocation", async () => {
    const wallet = Wallet.createRandom();
    const provider = walletProvider(wallet);
    const target = new EventTarget();
    target.addEventListener("eip6963:requestProvider", () => {
      const event = new Event("eip6963:announceProvider");
      event.detail = Object.freeze({ info: { uuid: "0d1e", name: "ethers", icon: "", rdns: "org.test" }, provider });
      target.dispatchEvent(event);
    });
    const [found] = await discoverWallets({ target, timeoutMs: 50 });
    assert.equal(found.provider, provider);

    const steps = [];
    const session = await signIn(found.provider, options({ onStep: (s) => steps.push(s) }));
    assert.deepEqual(steps, ["connect", "nonce", "sign", "verify"]);
    assert.equal(session.tokenType, "Bearer");
    assert.equal(session.address, wallet.address);
    assert.equal(session.claims.sub, `did:pkh:eip155:31337:${wallet.address}`);
    assert.equal(session.claims.scope, SCOPE);
    // The wallet signed exactly one EIP-4361 message; the npm siwe package parses it back.
    assert.equal(provider.signed.length, 1);
    const parsed = new SiweMessage(provider.signed[0]);
    assert.equal(parsed.address, wallet.address);
    assert.equal(parsed.domain, PAGE.domain);
    assert.equal(parsed.chainId, 31337);
    assert.equal(parsed.prepareMessage(), provider.signed[0]);

    const account = await session.fetch(`${servers.api}/account`);
    assert.equal(account.status, 200);
    assert.equal((await account.json()).sub, session.claims.sub);
    const order = await session.fetch(`${servers.api}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ symbol: "ETH-USDC", side: "buy", type: "limit", quantity: "0.1", price: "2500" }),
    });
    assert.equal(order.status, 201);

    const before = { ...session.tokens };
    let stored = null;
    session.onTokens = (s) => { stored = s.toJSON(); };
    await session.refresh();
    assert.notEqual(session.refreshToken, before.refresh_token, "the refresh token rotates");
    assert.notEqual(session.accessToken, before.access_token);
    assert.equal(stored.tokens.refresh_token, session.refreshToken, "onTokens sees the new tokens");
    assert.equal((await session.fetch(`${servers.api}/account`)).status, 200);

    await session.revoke();
    const client = new DidAuthClient({ issuer: servers.issuer, clientId: "demo" });
    await assert.rejects(client.refresh(session.refreshToken), (err) => {
      assert.ok(err instanceof DidAuthError);
      assert.equal(err.status, 400);
      assert.equal(err.error, "invalid_grant");
      assert.equal(typeof err.errorDescription, "string");
      return true;
    });
    // The API follows the revocation feed; then its 401 invalid_token leads to one refresh,
    // which did-auth refuses: fetch rejects with the server's own error.
    const refused = await eventually(async () => {
      try {
        await session.fetch(`${servers.api}/account`);
        return null;
      } catch (err) {
        return err;
      }
    }, "the API to refuse the revoked token");
    assert.ok(refused instanceof DidAuthError);
    assert.equal(refused.error, "invalid_grant");
  });

  test("a 401 invalid_token is answered by one refresh and one retry; an expired token is refreshed first", async () => {
    const log = [];
    const session = await signIn(walletProvider(Wallet.createRandom()), options({ fetch: recordingFetch(log) }));
    const firstRefresh = session.refreshToken;
    // A token the API refuses (its signature broken), as an expired or revoked one would be.
    const [h, p, s] = session.accessToken.split(".");
    session.tokens.access_token = `${h}.${p}.${s.startsWith("A") ? "B" : "A"}${s.slice(1)}`;
    const response = await session.fetch(`${servers.api}/account`);
    assert.equal(response.status, 200);
    assert.notEqual(session.refreshToken, firstRefresh);
    const calls = log.map((c) => c.url.replace(servers.api, "API").replace(servers.issuer, "AS"));
    assert.deepEqual(calls.slice(-3), ["API/account", "AS/token", "API/account"]);

    session.expiresAt = Date.now() - 1; // expired: refreshed before the request leaves
    log.length = 0;
    assert.equal((await session.fetch(`${servers.api}/account`)).status, 200);
    assert.deepEqual(log.map((c) => c.url.replace(servers.api, "API").replace(servers.issuer, "AS")),
      ["AS/token", "API/account"]);

    // Concurrent refreshes share one request: a second use of the rotated-out refresh
    // token would end the session.
    log.length = 0;
    const [a, b] = await Promise.all([session.refresh(), session.refresh()]);
    assert.equal(a.refresh_token, b.refresh_token);
    assert.equal(log.filter((c) => c.url.endsWith("/token")).length, 1);
    assert.equal((await session.fetch(`${servers.api}/account`)).status, 200);
  });

  test("refusals carry the server's error; a wallet refusal signs nothing", async () => {
    const provider = walletProvider(Wallet.createRandom());
    await assert.rejects(signIn(provider, options({ scope: "account:read admin:everything" })), (err) => {
      assert.ok(err instanceof DidAuthError);
      assert.equal(err.status, 400);
      assert.equal(err.error, "invalid_scope");
      assert.equal(err.code, "invalid_scope");
      assert.ok(err.errorDescription.length > 0);
      assert.ok(err.message.includes(err.errorDescription));
      return true;
    });
    const rejecting = walletProvider(Wallet.createRandom(), { reject: true });
    const log = [];
    await assert.rejects(signIn(rejecting, options({ fetch: recordingFetch(log) })), (err) => err.code === "user_rejected");
    assert.ok(!log.some((c) => c.url.endsWith("/siwe/verify")), "nothing was sent to /siwe/verify");
  });
});

describe("DPoP (RFC 9449)", () => {
  test("tokens bound to a non-extractable key; proofs with ath at the API; a stolen token is useless", async () => {
    const session = await signIn(walletProvider(Wallet.createRandom()), options({ dpop: true }));
    const key = session.client.dpopKey;
    assert.ok(key instanceof DpopKey);
    assert.equal(key.keyPair.privateKey.extractable, false);
    for (const format of ["jwk", "pkcs8"]) {
      await assert.rejects(crypto.subtle.exportKey(format, key.keyPair.privateKey), `exportKey(${format}) of the private key`);
    }
    assert.equal(session.tokenType, "DPoP");
    assert.equal(session.claims.cnf.jkt, key.thumbprint);

    const account = await session.fetch(`${servers.api}/account?x=1#frag`);
    assert.equal(account.status, 200);

    // The same access token without the key: as a Bearer token, or with a proof of another key.
    const asBearer = await fetch(`${servers.api}/account`, { headers: { authorization: `Bearer ${session.accessToken}` } });
    assert.equal(asBearer.status, 401);
    const thief = await DpopKey.generate();
    const stolen = await fetch(`${servers.api}/account`, {
      headers: {
        authorization: `DPoP ${session.accessToken}`,
        dpop: await thief.proof({ method: "GET", url: `${servers.api}/account`, accessToken: session.accessToken }),
      },
    });
    assert.equal(stolen.status, 401);
    // A captured proof cannot be replayed.
    const headers = await session.authHeaders("GET", `${servers.api}/account`);
    assert.equal((await fetch(`${servers.api}/account`, { headers })).status, 200);
    assert.equal((await fetch(`${servers.api}/account`, { headers })).status, 401);

    // The DPoP-bound refresh token refreshes only with a proof of the same key.
    const keyless = new DidAuthClient({ issuer: servers.issuer, clientId: "demo" });
    await assert.rejects(keyless.refresh(session.refreshToken), (err) => err.error === "invalid_dpop_proof");
    await session.refresh();
    assert.equal(session.tokenType, "DPoP");
    assert.equal((await session.fetch(`${servers.api}/account`)).status, 200);
  });

  test("a DPoP token for did-auth itself reads /userinfo", async () => {
    const session = await signIn(walletProvider(Wallet.createRandom()), options({ dpop: true, audience: servers.issuer, scope: undefined }));
    const response = await session.fetch(`${servers.issuer}/userinfo`);
    assert.equal(response.status, 200);
    assert.equal((await response.json()).sub, session.claims.sub);
    assert.equal((await session.client.userinfo(session.accessToken)).sub, session.claims.sub);
  });

  test("server nonces: use_dpop_nonce is answered once with the DPoP-Nonce given", async () => {
    const log = [];
    const session = await signIn(walletProvider(Wallet.createRandom()), options({
      issuer: servers.nonceIssuer, dpop: true, fetch: recordingFetch(log),
    }));
    assert.equal(session.tokenType, "DPoP");
    const verifies = log.filter((c) => c.url.endsWith("/siwe/verify"));
    assert.equal(verifies.length, 2, "refused once for want of a nonce, then accepted");
    const claimsOf = (proof) => JSON.parse(Buffer.from(proof.split(".")[1], "base64url"));
    assert.equal(claimsOf(verifies[0].headers.get("dpop")).nonce, undefined);
    assert.ok(claimsOf(verifies[1].headers.get("dpop")).nonce);
    // The nonce of the token response is remembered: the refresh needs no second try.
    log.length = 0;
    await session.refresh();
    assert.equal(log.filter((c) => c.url.endsWith("/token")).length, 1);
    assert.ok(claimsOf(log[0].headers.get("dpop")).nonce);
  });
});
