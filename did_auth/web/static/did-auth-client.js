// did-auth client module for dApps: Sign-In with Ethereum (EIP-4361) against a did-auth
// server, then refresh and revoke the tokens. Plain ES module, no dependencies, no build.
//
//   import { DidAuthClient, discoverWallets } from "https://auth.example/static/did-auth-client.js";
//   const client = new DidAuthClient({ issuer: "https://auth.example", clientId: "my-dapp",
//                                      audience: "trading-api", scope: "account:read" });
//   const [wallet] = await discoverWallets();          // EIP-6963 + window.ethereum
//   const { tokens } = await client.signIn({ provider: wallet.provider,
//                                            statement: "Sign in to My dApp." });
//   // tokens: {access_token, token_type, expires_in, refresh_token, scope}
//   const next = await client.refresh(tokens.refresh_token);   // rotates the refresh token
//   await client.revoke(next.refresh_token);                    // ends the whole session
//
// A second factor (TOTP) for step-up scopes is enrolled at did-auth itself, with a token
// for did-auth (audience = the issuer URL; did-auth refuses tokens for your APIs there,
// RFC 9068 §4):
//   const own = await client.signInForAccount({ provider: wallet.provider });
//   const { secret, otpauth_uri } = await client.enrollOtp(own.tokens.access_token);
//   await client.confirmOtp(own.tokens.access_token, codeFromTheAuthenticatorApp);
//
// The dance: POST /siwe/nonce -> build the exact EIP-4361 text -> personal_sign (EIP-191,
// EIP-1193 provider) -> POST /siwe/verify -> token response. Errors are DidAuthError with a
// `code` the UI can act on and a `message` written for the user:
//   wallet_missing, user_rejected, wallet_busy, wrong_chain, no_account, nonce_expired,
//   request_expired, server, network.
// Your page's origin must be registered for the client (`origins`, for CORS), and the
// message's domain/uri (your page's host and URL by default) in its `domains` / `uris`.

export class DidAuthError extends Error {
  constructor(code, message, detail = undefined) {
    super(message);
    this.name = "DidAuthError";
    this.code = code;
    this.detail = detail;
  }
}

export const CHAIN_NAMES = {
  1: "Ethereum Mainnet",
  10: "OP Mainnet",
  137: "Polygon",
  8453: "Base",
  42161: "Arbitrum One",
  11155111: "Sepolia",
  31337: "Local test chain (31337)",
};

export function chainName(id) {
  return CHAIN_NAMES[id] ?? `chain ${id}`;
}

// --- Keccak-256 and EIP-55 ---------------------------------------------------------------
// Keccak-f[1600] as in FIPS 202 §3 (constants derived, not tabled), with the original
// Keccak padding (0x01 ... 0x80) that Ethereum uses. Only used on 40-byte inputs, so
// BigInt lanes are fast enough and keep the code short.

const MASK64 = (1n << 64n) - 1n;

function rcBit(t) {
  // FIPS 202 Algorithm 5: an 8-bit LFSR with feedback polynomial x^8 + x^6 + x^5 + x^4 + 1.
  let r = 1;
  for (let i = 0; i < t % 255; i++) {
    r <<= 1;
    if (r & 0x100) r ^= 0x171;
  }
  return r & 1;
}

const ROUND_CONSTANTS = Array.from({ length: 24 }, (_, round) => {
  let rc = 0n;
  for (let j = 0; j <= 6; j++) {
    if (rcBit(j + 7 * round)) rc |= 1n << BigInt(2 ** j - 1);
  }
  return rc;
});

const RHO_OFFSETS = (() => {
  // FIPS 202 Algorithm 2: offsets (t+1)(t+2)/2 along the walk (x, y) -> (y, 2x + 3y).
  const offsets = new Array(25).fill(0);
  let x = 1;
  let y = 0;
  for (let t = 0; t < 24; t++) {
    offsets[x + 5 * y] = (((t + 1) * (t + 2)) / 2) % 64;
    [x, y] = [y, (2 * x + 3 * y) % 5];
  }
  return offsets;
})();

function rotl64(v, n) {
  if (n === 0) return v;
  const s = BigInt(n);
  return ((v << s) | (v >> (64n - s))) & MASK64;
}

function keccakF(a) {
  for (let round = 0; round < 24; round++) {
    // theta
    const c = [0, 1, 2, 3, 4].map((x) => a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20]);
    for (let x = 0; x < 5; x++) {
      const d = c[(x + 4) % 5] ^ rotl64(c[(x + 1) % 5], 1);
      for (let y = 0; y < 5; y++) a[x + 5 * y] ^= d;
    }
    // rho and pi: B[y, 2x + 3y] = rot(A[x, y])
    const b = new Array(25);
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) {
        b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl64(a[x + 5 * y], RHO_OFFSETS[x + 5 * y]);
      }
    }
    // chi
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 5; x++) {
        a[x + 5 * y] = b[x + 5 * y] ^ (~b[((x + 1) % 5) + 5 * y] & MASK64 & b[((x + 2) % 5) + 5 * y]);
      }
    }
    // iota
    a[0] ^= ROUND_CONSTANTS[round];
  }
}

export function keccak256(bytes) {
  const rate = 136;
  const padded = new Uint8Array(Math.ceil((bytes.length + 1) / rate) * rate);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const state = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) {
      let lane = 0n;
      for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[off + 8 * i + k]);
      state[i] ^= lane;
    }
    keccakF(state);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 4; i++) {
    let lane = state[i];
    for (let k = 0; k < 8; k++) {
      out[8 * i + k] = Number(lane & 0xffn);
      lane >>= 8n;
    }
  }
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** EIP-55 mixed-case checksum address (EIP-4361 requires it in the message). */
export function toChecksumAddress(address) {
  if (typeof address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new DidAuthError("no_account", "The wallet returned an invalid account address.");
  }
  const lower = address.slice(2).toLowerCase();
  const hash = toHex(keccak256(new TextEncoder().encode(lower)));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  return out;
}

// --- EIP-4361 ----------------------------------------------------------------------------

/** RFC 3339 UTC timestamp with milliseconds, e.g. 2026-01-02T03:04:05.678Z. */
export function isoTime(date = new Date()) {
  return date.toISOString();
}

/** The exact EIP-4361 message text (ABNF order; optional fields only when given). */
export function buildSiweMessage(f) {
  for (const name of ["domain", "address", "uri", "chainId", "nonce", "issuedAt"]) {
    if (f[name] === undefined || f[name] === null || f[name] === "") {
      throw new Error(`SIWE message: missing ${name}`);
    }
  }
  if (f.statement !== undefined && f.statement !== null && /\n/.test(f.statement)) {
    throw new Error("SIWE message: the statement must not contain a newline");
  }
  // ABNF: address LF LF [ statement LF ] LF "URI: " (no statement: two empty lines).
  const lines = [`${f.domain} wants you to sign in with your Ethereum account:`, f.address, ""];
  if (f.statement !== undefined && f.statement !== null) lines.push(f.statement);
  lines.push("");
  lines.push(
    `URI: ${f.uri}`,
    `Version: ${f.version ?? "1"}`,
    `Chain ID: ${f.chainId}`,
    `Nonce: ${f.nonce}`,
    `Issued At: ${f.issuedAt}`,
  );
  if (f.expirationTime) lines.push(`Expiration Time: ${f.expirationTime}`);
  if (f.notBefore) lines.push(`Not Before: ${f.notBefore}`);
  if (f.requestId !== undefined && f.requestId !== null) lines.push(`Request ID: ${f.requestId}`);
  if (f.resources && f.resources.length) {
    lines.push("Resources:");
    for (const r of f.resources) lines.push(`- ${r}`);
  }
  return lines.join("\n");
}

// --- EIP-1193 / EIP-6963 wallets ---------------------------------------------------------

/**
 * Wallets in the page: EIP-6963 announcements (each with name and icon), and the legacy
 * `window.ethereum` when no announced wallet is that same object.
 * Resolves to [{id, name, icon, rdns, provider}] after `timeoutMs`.
 */
export function discoverWallets({ timeoutMs = 400, target = globalThis } = {}) {
  return new Promise((resolve) => {
    const found = new Map();
    const onAnnounce = (event) => {
      const detail = event?.detail;
      const info = detail?.info;
      const provider = detail?.provider;
      if (!info || !provider || typeof provider.request !== "function") return;
      const id = String(info.uuid ?? info.rdns ?? info.name);
      if (found.has(id)) return;
      const icon = typeof info.icon === "string" && /^data:image\//.test(info.icon) ? info.icon : "";
      found.set(id, {
        id,
        name: String(info.name ?? "Wallet").slice(0, 60),
        icon,
        rdns: String(info.rdns ?? ""),
        provider,
      });
    };
    target.addEventListener?.("eip6963:announceProvider", onAnnounce);
    target.dispatchEvent?.(new Event("eip6963:requestProvider"));
    setTimeout(() => {
      target.removeEventListener?.("eip6963:announceProvider", onAnnounce);
      const wallets = [...found.values()];
      const injected = target.ethereum;
      if (injected && typeof injected.request === "function" &&
          !wallets.some((w) => w.provider === injected)) {
        wallets.push({ id: "injected", name: "Browser wallet", icon: "", rdns: "", provider: injected });
      }
      resolve(wallets);
    }, timeoutMs);
  });
}

/** Map an EIP-1193 provider error to a DidAuthError with words for the user. */
export function walletError(err) {
  if (err instanceof DidAuthError) return err;
  const code = err?.code ?? err?.error?.code;
  if (code === 4001) {
    return new DidAuthError(
      "user_rejected",
      "You declined the request in your wallet. Nothing was signed and you are not signed in.",
    );
  }
  if (code === -32002) {
    return new DidAuthError(
      "wallet_busy",
      "Your wallet already has a request open. Open your wallet, finish or close it, then try again.",
    );
  }
  if (code === 4100) {
    return new DidAuthError("user_rejected", "Your wallet did not allow this site to use your account.");
  }
  if (code === 4900 || code === 4901) {
    return new DidAuthError("wrong_chain", "Your wallet is not connected to a network. Connect it and try again.");
  }
  return new DidAuthError("wallet", `Your wallet reported an error: ${String(err?.message ?? err).slice(0, 200)}`);
}

async function walletCall(provider, method, params) {
  try {
    return await provider.request(params === undefined ? { method } : { method, params });
  } catch (err) {
    throw walletError(err);
  }
}

/**
 * Ask for the account and check the chain. With `chainIds`, a wallet on another chain is
 * asked to switch (EIP-3326); if it cannot, a `wrong_chain` error says what to do.
 */
export async function connectWallet(provider, { chainIds = null } = {}) {
  if (!provider || typeof provider.request !== "function") {
    throw new DidAuthError(
      "wallet_missing",
      "No Ethereum wallet was found. Install a wallet browser extension, or open this page in your wallet app's browser.",
    );
  }
  const accounts = await walletCall(provider, "eth_requestAccounts");
  if (!Array.isArray(accounts) || accounts.length === 0) {
    throw new DidAuthError("no_account", "Your wallet did not share an account. Unlock it and try again.");
  }
  const address = toChecksumAddress(accounts[0]);
  let chainId = parseInt(await walletCall(provider, "eth_chainId"), 16);
  if (chainIds && chainIds.length && !chainIds.includes(chainId)) {
    const wanted = chainIds[0];
    try {
      await provider.request({
        method: "wallet_switchEthereumChain",
        params: [{ chainId: "0x" + wanted.toString(16) }],
      });
      chainId = parseInt(await walletCall(provider, "eth_chainId"), 16);
    } catch {
      // fall through to the explanation below
    }
    if (!chainIds.includes(chainId)) {
      const names = chainIds.map(chainName).join(" or ");
      throw new DidAuthError(
        "wrong_chain",
        `Your wallet is on ${chainName(chainId)}, but this sign-in needs ${names}. Switch the network in your wallet, then try again.`,
        { chainId, chainIds },
      );
    }
  }
  return { address, chainId };
}

/** EIP-191 personal_sign of the UTF-8 text, as wallets expect it: [0x-hex data, address]. */
export async function personalSign(provider, address, text) {
  const data = "0x" + toHex(new TextEncoder().encode(text));
  const signature = await walletCall(provider, "personal_sign", [data, address]);
  if (typeof signature !== "string" || !/^0x[0-9a-fA-F]+$/.test(signature)) {
    throw new DidAuthError("wallet", "Your wallet returned something that is not a signature.");
  }
  return signature;
}

// --- tokens ------------------------------------------------------------------------------

/** The claims of a JWT (not verified: for display; servers verify). */
export function decodeJwt(token) {
  const part = String(token).split(".")[1];
  if (!part) throw new Error("not a JWT");
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function serverError(status, body) {
  const code = body?.error ?? "server";
  const text = body?.error_description ?? `the server answered ${status}`;
  if (code === "invalid_grant" && /nonce/i.test(text)) {
    return new DidAuthError(
      "nonce_expired",
      "The sign-in code expired or was already used before the signature arrived. Try again to get a fresh one.",
      body,
    );
  }
  if (code === "invalid_grant" && /request (expired|was already used)|expired or was already used: go back/i.test(text)) {
    return new DidAuthError("request_expired", "This sign-in request has expired. Go back to the application and start again.", body);
  }
  if (status === 429) {
    return new DidAuthError("rate_limited", "Too many attempts. Wait a moment, then try again.", body);
  }
  return new DidAuthError(code, `Sign-in failed: ${text}`, body);
}

/**
 * Sign in through did-auth's hosted page in a popup, for a dApp on another origin (which
 * must be one of the client's registered `origins`). Call it from a click handler (pop-up
 * blockers). Resolves to {issuer, client_id, audience, address, chain_id, tokens}.
 */
export function signInWithPopup({ issuer, clientId, audience = undefined, scope = undefined,
                                  width = 460, height = 760 }) {
  const issuerOrigin = new URL(issuer).origin;
  const params = new URLSearchParams({ client_id: clientId, origin: globalThis.location.origin });
  if (audience) params.set("audience", audience);
  if (scope) params.set("scope", scope);
  const popup = globalThis.open(`${issuerOrigin}/signin?${params}`, "did-auth-signin",
                                `popup,width=${width},height=${height}`);
  if (!popup) {
    return Promise.reject(new DidAuthError("popup_blocked",
      "The sign-in window was blocked. Allow pop-ups for this site and try again."));
  }
  return new Promise((resolve, reject) => {
    let closedChecks = 0;
    const onMessage = (event) => {
      // Only the popup we opened, on the issuer's origin, may answer.
      if (event.origin !== issuerOrigin || event.source !== popup) return;
      if (event.data?.type !== "did-auth:signed-in") return;
      cleanup();
      resolve(event.data.session);
    };
    const timer = setInterval(() => {
      // Closed for two checks in a row: a result posted just before closing has arrived.
      closedChecks = popup.closed ? closedChecks + 1 : 0;
      if (closedChecks >= 2) {
        cleanup();
        reject(new DidAuthError("popup_closed", "The sign-in window was closed before you signed in."));
      }
    }, 250);
    function cleanup() {
      clearInterval(timer);
      globalThis.removeEventListener("message", onMessage);
    }
    globalThis.addEventListener("message", onMessage);
  });
}

export class DidAuthClient {
  constructor({ issuer = globalThis.location?.origin, clientId, audience = undefined, scope = undefined, fetchImpl = undefined } = {}) {
    if (!issuer) throw new Error("DidAuthClient: issuer is required");
    if (!clientId) throw new Error("DidAuthClient: clientId is required");
    this.issuer = issuer.replace(/\/+$/, "");
    this.clientId = clientId;
    this.audience = audience;
    this.scope = scope;
    this._fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  }

  async _post(path, body, { form = false, accessToken = undefined } = {}) {
    let response;
    const headers = { "content-type": form ? "application/x-www-form-urlencoded" : "application/json" };
    if (accessToken) headers.authorization = `Bearer ${accessToken}`;
    try {
      response = await this._fetch(this.issuer + path, {
        method: "POST",
        headers,
        body: form ? new URLSearchParams(body).toString() : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (err) {
      throw new DidAuthError("network", "Could not reach the sign-in server. Check your connection and try again.", err);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) throw serverError(response.status, data);
    return data;
  }

  /** POST /siwe/nonce: a fresh single-use nonce. */
  async nonce() {
    return this._post("/siwe/nonce", { client_id: this.clientId });
  }

  /** POST /siwe/verify: trade a signed message for tokens. */
  async verify({ message, signature, audience = this.audience, scope = this.scope, otp = undefined }) {
    const body = { client_id: this.clientId, message, signature };
    if (audience) body.audience = audience;
    if (scope) body.scope = scope;
    if (otp) body.otp = otp;
    return this._post("/siwe/verify", body);
  }

  /**
   * Build the EIP-4361 message for `address` (nonce fetched here) without signing it.
   * `domain`/`uri` default to this page; `expiresIn` (seconds) sets Expiration Time.
   */
  async prepareMessage({ address, chainId, statement = undefined, resources = undefined, requestId = undefined,
                         domain = globalThis.location?.host, uri = globalThis.location?.href?.split("#")[0],
                         expiresIn = 300 }) {
    const { nonce } = await this.nonce();
    const now = new Date();
    return buildSiweMessage({
      domain,
      address,
      statement,
      uri,
      version: "1",
      chainId,
      nonce,
      issuedAt: isoTime(now),
      expirationTime: expiresIn ? isoTime(new Date(now.getTime() + expiresIn * 1000)) : undefined,
      requestId,
      resources,
    });
  }

  /**
   * The whole dance with an EIP-1193 `provider`. `onStep(step)` is told "connect", "nonce",
   * "sign", "verify" as it goes (for status messages). Returns {tokens, address, chainId,
   * message, signature}; `submit` replaces the final /siwe/verify call when given.
   */
  async signIn({ provider, chainIds = null, statement = undefined, resources = undefined, requestId = undefined,
                 domain = undefined, uri = undefined, expiresIn = 300, onStep = () => {}, submit = null,
                 audience = this.audience }) {
    onStep("connect");
    const { address, chainId } = await connectWallet(provider, { chainIds });
    onStep("nonce");
    const message = await this.prepareMessage({
      address, chainId, statement, resources, requestId, expiresIn,
      ...(domain ? { domain } : {}), ...(uri ? { uri } : {}),
    });
    onStep("sign");
    const signature = await personalSign(provider, address, message);
    onStep("verify");
    const tokens = submit ? await submit({ message, signature }) : await this.verify({ message, signature, audience });
    return { tokens, address, chainId, message, signature };
  }

  /**
   * signIn for did-auth itself (audience = the issuer URL): the only tokens did-auth's own
   * resources accept (/otp/enroll, /otp/confirm; RFC 9068 §4). Keep them in this page:
   * never send them to your APIs, and never use your APIs' tokens here.
   */
  async signInForAccount(options) {
    return this.signIn({ ...options, audience: this.issuer });
  }

  /**
   * POST /otp/enroll: start a TOTP enrolment; {secret, otpauth_uri, replaces}. `accessToken`
   * from signInForAccount (a fresh login enrols the first factor); replacing one needs `otp`
   * (a code of the current factor) or `siwe` ({message, signature} for re-enrolment).
   */
  async enrollOtp(accessToken, { otp = undefined, siwe = undefined } = {}) {
    const body = {};
    if (otp) body.otp = otp;
    if (siwe) body.siwe = siwe;
    return this._post("/otp/enroll", body, { accessToken });
  }

  /** POST /otp/confirm: activate the pending enrolment with a code of its new secret. */
  async confirmOtp(accessToken, otp) {
    return this._post("/otp/confirm", { otp }, { accessToken });
  }

  /** RFC 6749 §6 refresh (the refresh token rotates: keep the new one). */
  async refresh(refreshToken, { scope = undefined } = {}) {
    const form = { grant_type: "refresh_token", refresh_token: refreshToken, client_id: this.clientId };
    if (scope) form.scope = scope;
    return this._post("/token", form, { form: true });
  }

  /** RFC 7009 revocation: either token of a session ends the whole session. A public
   * client identifies itself with client_id (RFC 7009 §2.1, RFC 6749 §2.3). */
  async revoke(token) {
    await this._post("/revoke", { token, client_id: this.clientId }, { form: true });
  }
}
