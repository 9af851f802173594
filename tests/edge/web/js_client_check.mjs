#!/usr/bin/env node
// Unit checks of the client package (clients/js) in Node, against independent implementations:
// ethers v6 (Keccak-256, EIP-55) and the npm `siwe` package (EIP-4361 text).
// Prints {"ok": true, "messages": [...]} (the messages are re-parsed by the Python test).
import assert from "node:assert/strict";
import { SiweMessage } from "siwe";
import { Wallet, getAddress, keccak256 as ethersKeccak, hexlify, randomBytes } from "ethers";
import {
  DidAuthClient,
  DidAuthError,
  buildSiweMessage,
  connectWallet,
  decodeJwt,
  discoverWallets,
  keccak256,
  toChecksumAddress,
  toHex,
  walletError,
} from "../../../clients/js/src/index.js";

// Keccak-256 across the 136-byte rate boundary.
for (const n of [0, 1, 55, 135, 136, 137, 271, 272, 273, 500]) {
  const bytes = randomBytes(n);
  assert.equal("0x" + toHex(keccak256(bytes)), ethersKeccak(bytes), `keccak length ${n}`);
}
assert.equal(toHex(keccak256(new Uint8Array())), "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");

// EIP-55 from lower- and upper-case input.
for (let i = 0; i < 200; i++) {
  const address = getAddress(hexlify(randomBytes(20)));
  assert.equal(toChecksumAddress(address.toLowerCase()), address);
  assert.equal(toChecksumAddress("0x" + address.slice(2).toUpperCase()), address);
}
assert.throws(() => toChecksumAddress("0x1234"), DidAuthError);

// EIP-4361 text equals the npm siwe package's serialisation.
const messages = [];
const wallet = Wallet.createRandom();
const cases = [
  { statement: "Sign in to the demo.", requestId: "req-1_a", resources: ["urn:recap:eyJhdHQiOnt9fQ", "https://example.com/x"] },
  { statement: undefined, requestId: undefined, resources: undefined },
  { statement: "Hi.", requestId: undefined, resources: ["ipfs://bafy"], notBefore: "2030-01-01T00:00:00.000Z" },
];
for (const c of cases) {
  const fields = {
    domain: "127.0.0.1:8000",
    address: wallet.address,
    statement: c.statement,
    uri: "http://127.0.0.1:8000/signin",
    version: "1",
    chainId: 31337,
    nonce: "abcdefgh12345678",
    issuedAt: "2026-11-28T12:00:00.000Z",
    expirationTime: "2026-11-28T12:05:00.000Z",
    notBefore: c.notBefore,
    requestId: c.requestId,
    resources: c.resources,
  };
  const ours = buildSiweMessage(fields);
  const theirs = new SiweMessage(Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined))).prepareMessage();
  assert.equal(ours, theirs);
  messages.push(ours);
}
assert.throws(() => buildSiweMessage({ domain: "x", address: wallet.address, uri: "u", chainId: 1, nonce: "n", issuedAt: "t", statement: "a\nb" }));

// Wallet errors in words.
assert.equal(walletError({ code: 4001, message: "User rejected" }).code, "user_rejected");
assert.equal(walletError({ code: -32002 }).code, "wallet_busy");
await assert.rejects(connectWallet(undefined), (e) => e.code === "wallet_missing");
const onChain5 = {
  calls: [],
  async request({ method }) {
    this.calls.push(method);
    if (method === "eth_requestAccounts") return [wallet.address.toLowerCase()];
    if (method === "eth_chainId") return "0x5";
    throw Object.assign(new Error("Unrecognized chain"), { code: 4902 });
  },
};
await assert.rejects(connectWallet(onChain5, { chainIds: [31337] }), (e) => e.code === "wrong_chain" && /chain 5/.test(e.message));
assert.ok(onChain5.calls.includes("wallet_switchEthereumChain"));
const switches = {
  chain: "0x5",
  async request({ method }) {
    if (method === "eth_requestAccounts") return [wallet.address.toLowerCase()];
    if (method === "eth_chainId") return this.chain;
    if (method === "wallet_switchEthereumChain") { this.chain = "0x7a69"; return null; }
    throw new Error(method);
  },
};
assert.deepEqual(await connectWallet(switches, { chainIds: [31337] }), { address: wallet.address, chainId: 31337 });

// EIP-6963 discovery plus the legacy window.ethereum, de-duplicated.
const target = new EventTarget();
const provider = { request: async () => null };
target.ethereum = provider;
target.addEventListener("eip6963:requestProvider", () => {
  const announce = (info) => {
    const ev = new Event("eip6963:announceProvider");
    ev.detail = { info, provider };
    target.dispatchEvent(ev);
  };
  announce({ uuid: "u1", name: "One", icon: "javascript:alert(1)", rdns: "x.one" });
  announce({ uuid: "u1", name: "Duplicate", icon: "", rdns: "x.one" });
});
const wallets = await discoverWallets({ timeoutMs: 20, target });
assert.equal(wallets.length, 1);
assert.equal(wallets[0].name, "One");
assert.equal(wallets[0].icon, "", "non-image icons are dropped");
assert.equal((await discoverWallets({ timeoutMs: 10, target: new EventTarget() })).length, 0);

// The dance with a fake server: an expired nonce becomes a clear `nonce_expired`.
const calls = [];
const fakeFetch = async (url, init) => {
  calls.push([url, init.body]);
  if (url.endsWith("/siwe/nonce")) return new Response(JSON.stringify({ nonce: "abcdefgh12345678", expires_in: 300 }), { status: 200 });
  return new Response(JSON.stringify({ error: "invalid_grant", error_description: "nonce unknown, expired or already used" }), { status: 400 });
};
const signer = {
  async request({ method, params }) {
    if (method === "eth_requestAccounts") return [wallet.address.toLowerCase()];
    if (method === "eth_chainId") return "0x7a69";
    if (method === "personal_sign") return wallet.signMessage(Buffer.from(params[0].slice(2), "hex"));
    throw new Error(method);
  },
};
const client = new DidAuthClient({ issuer: "http://127.0.0.1:1", clientId: "demo", fetchImpl: fakeFetch });
await assert.rejects(
  client.signIn({ provider: signer, domain: "127.0.0.1:1", uri: "http://127.0.0.1:1/", statement: "Hi." }),
  (e) => e.code === "nonce_expired" && /Try again/.test(e.message),
);
assert.equal(JSON.parse(calls[1][1]).client_id, "demo");
assert.match(JSON.parse(calls[1][1]).message, new RegExp(`\\n${wallet.address}\\n`));

// OTP enrolment: signInForAccount logs in for did-auth itself (audience = the issuer, the
// only audience did-auth's /otp routes accept, RFC 9068 §4); enrollOtp/confirmOtp send it.
const seen = [];
const okFetch = async (url, init) => {
  seen.push([url, init]);
  if (url.endsWith("/siwe/nonce")) return new Response(JSON.stringify({ nonce: "abcdefgh12345678", expires_in: 300 }), { status: 200 });
  if (url.endsWith("/siwe/verify")) return new Response(JSON.stringify({ access_token: "at.for.issuer", token_type: "Bearer" }), { status: 200 });
  if (url.endsWith("/otp/enroll")) return new Response(JSON.stringify({ secret: "S", otpauth_uri: "otpauth://totp/x", replaces: false }), { status: 200 });
  return new Response(JSON.stringify({ enrolled: true, replaced: false }), { status: 200 });
};
const account = new DidAuthClient({ issuer: "http://127.0.0.1:1/", clientId: "demo", audience: "trading-api", fetchImpl: okFetch });
const own = await account.signInForAccount({ provider: signer, domain: "127.0.0.1:1", uri: "http://127.0.0.1:1/" });
assert.equal(JSON.parse(seen[1][1].body).audience, "http://127.0.0.1:1");
assert.equal((await account.enrollOtp(own.tokens.access_token)).secret, "S");
assert.equal(seen[2][0], "http://127.0.0.1:1/otp/enroll");
assert.equal(seen[2][1].headers.authorization, "Bearer at.for.issuer");
assert.deepEqual(await account.confirmOtp(own.tokens.access_token, "123456"), { enrolled: true, replaced: false });
assert.deepEqual(JSON.parse(seen[3][1].body), { otp: "123456" });
await account.signIn({ provider: signer, domain: "127.0.0.1:1", uri: "http://127.0.0.1:1/" });
assert.equal(JSON.parse(seen[5][1].body).audience, "trading-api", "plain sign-in keeps the API audience");

// decodeJwt (display only) handles base64url without padding.
const payload = { sub: "did:pkh:eip155:1:" + wallet.address, "ü": "ß" };
const b64 = Buffer.from(JSON.stringify(payload)).toString("base64url");
assert.deepEqual(decodeJwt(`e30.${b64}.sig`), payload);

process.stdout.write(JSON.stringify({ ok: true, messages }) + "\n");
