// A signed-in session: the tokens, a `fetch` that attaches them (with a DPoP proof for
// DPoP-bound tokens), refresh with rotation, and revocation.
import { DidAuthError, networkError } from "./errors.js";
import { decodeJwt } from "./oidc.js";

// Refresh a little before `exp`, so a request does not leave with a token about to expire.
const EXPIRY_MARGIN_MS = 10_000;

/**
 * The `error` parameter of a response's `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9449
 * §7.1), or undefined. A cross-origin API must expose the header (CORS) for it to be read.
 */
export function challengeError(response) {
  const header = response?.headers?.get?.("www-authenticate");
  if (!header) return undefined;
  const match = /(?:^|[\s,])error="([^"]*)"/i.exec(header);
  return match ? match[1] : undefined;
}

function isDpop(tokenType) {
  return /^dpop$/i.test(tokenType ?? "");
}

function expiresAtOf(tokens, now) {
  if (typeof tokens?.expires_at === "number") return tokens.expires_at * 1000;
  if (typeof tokens?.expires_in === "number") return now + tokens.expires_in * 1000;
  try {
    const exp = decodeJwt(tokens.access_token).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class Session {
  /**
   * `client`: the DidAuthClient that signed in (its DpopKey signs the proofs of DPoP-bound
   * tokens). `tokens`: a token response. `onTokens(session)` is called after every refresh
   * (keep the new refresh token: the old one is now rotated out).
   */
  constructor(client, tokens, { address = undefined, chainId = undefined, message = undefined,
                                onTokens = undefined, now = () => Date.now() } = {}) {
    if (!tokens?.access_token) throw new Error("Session: tokens.access_token is required");
    this.client = client;
    this.address = address;
    this.chainId = chainId;
    this.message = message;
    this.onTokens = onTokens;
    this._now = now;
    this._refreshing = null;
    this._setTokens(tokens);
  }

  _setTokens(tokens) {
    this.tokens = { ...tokens };
    this.expiresAt = expiresAtOf(tokens, this._now());
    // Absolute, so the tokens can be stored and the session rebuilt with the same deadline.
    if (this.expiresAt !== undefined) this.tokens.expires_at = Math.floor(this.expiresAt / 1000);
  }

  get accessToken() {
    return this.tokens.access_token;
  }

  get refreshToken() {
    return this.tokens.refresh_token;
  }

  /** "DPoP" for DPoP-bound tokens (RFC 9449 §5), else "Bearer". */
  get tokenType() {
    return isDpop(this.tokens.token_type) ? "DPoP" : "Bearer";
  }

  /** The access token's claims (not verified: for display). */
  get claims() {
    return decodeJwt(this.accessToken);
  }

  get expired() {
    return this.expiresAt !== undefined && this._now() >= this.expiresAt - EXPIRY_MARGIN_MS;
  }

  /**
   * Refresh the tokens (RFC 6749 §6; the refresh token rotates). Concurrent calls share one
   * request: presenting a rotated-out refresh token twice would end the session.
   */
  refresh({ scope = undefined } = {}) {
    if (!this.refreshToken) {
      return Promise.reject(new DidAuthError("no_refresh_token", "This session cannot be renewed: sign in again."));
    }
    this._refreshing ??= (async () => {
      try {
        const fresh = await this.client.refresh(this.refreshToken, { scope });
        this._setTokens({ ...this.tokens, ...fresh, expires_at: undefined });
        await this.onTokens?.(this);
        return this.tokens;
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  /** The `Authorization` value and, for DPoP-bound tokens, a proof for this request. */
  async authHeaders(method, url) {
    const headers = { authorization: `${this.tokenType} ${this.accessToken}` };
    if (this.tokenType === "DPoP") {
      const key = this.client.dpopKey;
      if (!key) throw new DidAuthError("dpop_key_missing", "This session's DPoP key is not available: sign in again.");
      headers.dpop = await key.proof({ method, url, accessToken: this.accessToken });
    }
    return headers;
  }

  /**
   * fetch(input, init) with the access token attached (`Authorization: Bearer|DPoP`, and a
   * DPoP proof with htm, htu, iat, jti and ath for DPoP-bound tokens). Resolves to the
   * Response, whatever its status, after at most one renewal: an expired token is refreshed
   * before the request; a 401 `invalid_token` is answered by one refresh and one retry; a 401
   * `use_dpop_nonce` by one retry with the `DPoP-Nonce` the server sent (RFC 9449 §9). A
   * request body must be replayable (a string, Blob, FormData, URLSearchParams or buffer).
   */
  async fetch(input, init = {}) {
    const isRequest = typeof Request !== "undefined" && input instanceof Request;
    const url = isRequest ? input.url : new URL(String(input), globalThis.location?.href).href;
    const method = String(init.method ?? (isRequest ? input.method : "GET")).toUpperCase();
    if (this.expired && this.refreshToken) await this.refresh();
    let refreshed = false;
    let nonceRetried = false;
    for (;;) {
      const used = this.accessToken;
      const headers = new Headers(init.headers ?? (isRequest ? input.headers : undefined));
      for (const [name, value] of Object.entries(await this.authHeaders(method, url))) headers.set(name, value);
      let response;
      try {
        response = await this.client._fetch(isRequest ? input.clone() : url, {
          credentials: "omit",
          ...init,
          method,
          headers,
        });
      } catch (err) {
        throw networkError(err, new URL(url).origin);
      }
      if (this.tokenType === "DPoP") this.client.dpopKey?.rememberNonce(url, response);
      if (response.status !== 401) return response;
      const error = challengeError(response);
      if (error === "use_dpop_nonce" && this.tokenType === "DPoP" && !nonceRetried &&
          response.headers.get("dpop-nonce")) {
        nonceRetried = true;
        continue;
      }
      // 401 invalid_token (RFC 6750 §3.1: expired, revoked, malformed). A challenge the page
      // cannot read (CORS) counts as one; insufficient_user_authentication etc. do not.
      const renewable = error === undefined || error === "invalid_token";
      if (!renewable || refreshed || !this.refreshToken) return response;
      refreshed = true;
      if (this.accessToken === used) await this.refresh();
    }
  }

  /** RFC 7009: end the session at did-auth (either token ends it whole; the access token's
   * own `jti` is denied too). */
  async revoke() {
    if (this.refreshToken) await this.client.revoke(this.refreshToken);
    await this.client.revoke(this.accessToken);
  }

  /** What to store to rebuild the session later (not the DPoP key: keep its CryptoKeyPair). */
  toJSON() {
    return {
      issuer: this.client.issuer,
      client_id: this.client.clientId,
      address: this.address,
      chain_id: this.chainId,
      tokens: this.tokens,
    };
  }
}
