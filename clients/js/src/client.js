// DidAuthClient: the did-auth endpoints a dApp calls (SIWE nonce and verify, token refresh and
// revocation, OTP enrolment, the hosted /authorize page, the OIDC code flow, /userinfo), with
// DPoP proofs (RFC 9449) on every call when the client has a DpopKey.
import { DidAuthError, networkError, serverError } from "./errors.js";
import { buildSiweMessage, isoTime } from "./siwe.js";
import { connectWallet, personalSign } from "./wallet.js";
import { DpopKey } from "./dpop.js";
import { createPkce, decodeJwt, randomString } from "./oidc.js";
import { Session, challengeError } from "./session.js";

// The endpoints that take a DPoP proof to bind or use tokens (RFC 9449 §5; /siwe/verify and
// /did/verify are did-auth's direct logins); resources get one with a DPoP access token.
const PROOF_ENDPOINTS = new Set(["/siwe/verify", "/did/verify", "/token"]);

async function readJson(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

export class DidAuthClient {
  /**
   * `issuer`: the did-auth URL (default: this page's origin). `dpop`: a DpopKey to bind every
   * token to (see `useDpop()`); without one, tokens are Bearer tokens. `fetchImpl`: a fetch.
   */
  constructor({ issuer = globalThis.location?.origin, clientId, audience = undefined, scope = undefined,
                fetchImpl = undefined, dpop = undefined } = {}) {
    if (!issuer) throw new Error("DidAuthClient: issuer is required");
    if (!clientId) throw new Error("DidAuthClient: clientId is required");
    this.issuer = issuer.replace(/\/+$/, "");
    this.clientId = clientId;
    this.audience = audience;
    this.scope = scope;
    this.dpopKey = dpop ?? null;
    this._fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  }

  /** Bind the tokens of this client to a DPoP key: `key`, or a new non-extractable one. */
  async useDpop(key = undefined) {
    this.dpopKey = key ?? this.dpopKey ?? (await DpopKey.generate());
    return this.dpopKey;
  }

  /**
   * One call to did-auth. With a DpopKey, a proof goes with it (htm, htu; `ath` when an access
   * token is sent) and a `use_dpop_nonce` refusal is retried once with the server's nonce
   * (RFC 9449 §8: 400 at the token endpoints, §9: 401 at resources).
   */
  async _request(path, body, { form = false, accessToken = undefined, tokenType = "Bearer", method = "POST",
                               prefix = undefined } = {}) {
    const url = this.issuer + path;
    const dpopScheme = /^dpop$/i.test(tokenType ?? "");
    for (let attempt = 0; ; attempt++) {
      const headers = {};
      if (body !== undefined) headers["content-type"] = form ? "application/x-www-form-urlencoded" : "application/json";
      if (accessToken) headers.authorization = `${dpopScheme ? "DPoP" : "Bearer"} ${accessToken}`;
      if (this.dpopKey && (PROOF_ENDPOINTS.has(path) || (accessToken && dpopScheme))) {
        headers.dpop = await this.dpopKey.proof({ method, url, accessToken: dpopScheme ? accessToken : undefined });
      }
      let response;
      try {
        response = await this._fetch(url, {
          method,
          headers,
          ...(body === undefined ? {} : { body: form ? new URLSearchParams(body).toString() : JSON.stringify(body) }),
          credentials: "omit",
          cache: "no-store",
        });
      } catch (err) {
        throw networkError(err);
      }
      const fresh = this.dpopKey?.rememberNonce(url, response);
      const data = await readJson(response);
      if (response.ok) return data;
      const demanded = data?.error === "use_dpop_nonce" || challengeError(response) === "use_dpop_nonce";
      if (this.dpopKey && demanded && fresh && attempt === 0) continue;
      throw serverError(response.status, data, prefix ? { prefix } : undefined);
    }
  }

  _post(path, body, options = {}) {
    return this._request(path, body, options);
  }

  /** POST /siwe/nonce: a fresh single-use nonce ({nonce, expires_in}). */
  async nonce() {
    return this._post("/siwe/nonce", { client_id: this.clientId });
  }

  /** POST /siwe/verify: trade a signed message for tokens (DPoP-bound with a DpopKey). */
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
                         expiresIn = 300, scheme = undefined }) {
    if (!domain || !uri) throw new Error("prepareMessage: domain and uri are required outside a browser page");
    const { nonce } = await this.nonce();
    const now = new Date();
    return buildSiweMessage({
      scheme,
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
   * The whole dance with an EIP-1193 `provider`: connect, POST /siwe/nonce, the exact
   * EIP-4361 text, personal_sign, POST /siwe/verify. `onStep(step)` is told "connect",
   * "nonce", "sign", "verify" as it goes. Returns {tokens, address, chainId, message,
   * signature}; `submit` replaces the final /siwe/verify call when given.
   */
  async signIn({ provider, chainIds = null, statement = undefined, resources = undefined, requestId = undefined,
                 domain = undefined, uri = undefined, scheme = undefined, expiresIn = 300, onStep = () => {},
                 submit = null, audience = this.audience, scope = this.scope, otp = undefined }) {
    onStep("connect");
    const { address, chainId } = await connectWallet(provider, { chainIds });
    onStep("nonce");
    const message = await this.prepareMessage({
      address, chainId, statement, resources, requestId, expiresIn, scheme,
      ...(domain ? { domain } : {}), ...(uri ? { uri } : {}),
    });
    onStep("sign");
    const signature = await personalSign(provider, address, message);
    onStep("verify");
    const tokens = submit
      ? await submit({ message, signature })
      : await this.verify({ message, signature, audience, scope, otp });
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
  async enrollOtp(accessToken, { otp = undefined, siwe = undefined, tokenType = undefined } = {}) {
    const body = {};
    if (otp) body.otp = otp;
    if (siwe) body.siwe = siwe;
    return this._post("/otp/enroll", body, { accessToken, tokenType: tokenType ?? this._schemeOf() });
  }

  /** POST /otp/confirm: activate the pending enrolment with a code of its new secret. */
  async confirmOtp(accessToken, otp, { tokenType = undefined } = {}) {
    return this._post("/otp/confirm", { otp }, { accessToken, tokenType: tokenType ?? this._schemeOf() });
  }

  /** GET /userinfo (OIDC) with an access token whose audience includes the issuer. */
  async userinfo(accessToken, { tokenType = undefined } = {}) {
    return this._request("/userinfo", undefined, {
      method: "GET", accessToken, tokenType: tokenType ?? this._schemeOf(), prefix: "The account could not be read",
    });
  }

  _schemeOf() {
    return this.dpopKey ? "DPoP" : "Bearer";
  }

  /** RFC 6749 §6 refresh (the refresh token rotates: keep the new one). */
  async refresh(refreshToken, { scope = undefined } = {}) {
    const form = { grant_type: "refresh_token", refresh_token: refreshToken, client_id: this.clientId };
    if (scope) form.scope = scope;
    return this._post("/token", form, { form: true, prefix: "The session could not be renewed" });
  }

  /** RFC 7009 revocation: either token of a session ends the whole session. A public
   * client identifies itself with client_id (RFC 7009 §2.1, RFC 6749 §2.3). */
  async revoke(token) {
    await this._post("/revoke", { token, client_id: this.clientId }, { form: true });
  }

  // --- the hosted page's /authorize request (did-auth's own sign-in page) ----------------

  /** POST /authorize/complete: the signed message for an /authorize request -> {redirect}. */
  async completeAuthorization({ requestId, message, signature, otp = undefined }) {
    try {
      const body = { request_id: requestId, message, signature };
      if (otp) body.otp = otp; // a step-up scope in the request needs its TOTP code
      return await this._post("/authorize/complete", body);
    } catch (err) {
      if (err instanceof DidAuthError && err.code !== "nonce_expired" && err.status === 400 &&
          /expired|already used/i.test(err.errorDescription ?? "")) {
        throw new DidAuthError("request_expired",
          "This sign-in request has expired. Go back to the application and start again.", err.detail, { status: 400 });
      }
      throw err;
    }
  }

  /** POST /authorize/cancel: the user declined -> {redirect} (with error=access_denied). */
  async cancelAuthorization(requestId) {
    return this._post("/authorize/cancel", { request_id: requestId });
  }

  // --- OpenID Connect code flow with PKCE (this app as a public client) --------------------

  /**
   * An authorization request (RFC 6749 §4.1.1, PKCE S256, OIDC nonce; `dpop_jkt` of this
   * client's DpopKey, RFC 9449 §10). Keep `request` (e.g. in sessionStorage) until the
   * redirect comes back, then call finishAuthorization with it.
   */
  async authorizationRequest({ redirectUri, scope = this.scope, audience = this.audience, openid = true,
                               extra = {} }) {
    const pkce = await createPkce();
    const request = { verifier: pkce.verifier, state: randomString(16), nonce: randomString(16), redirectUri };
    const words = `${openid ? "openid " : ""}${scope ?? ""}`.trim();
    const params = new URLSearchParams({
      response_type: "code",
      client_id: this.clientId,
      redirect_uri: redirectUri,
      ...(words ? { scope: words } : {}),
      ...(audience ? { audience } : {}),
      state: request.state,
      nonce: request.nonce,
      code_challenge: pkce.challenge,
      code_challenge_method: "S256",
      ...(this.dpopKey ? { dpop_jkt: this.dpopKey.thumbprint } : {}),
      ...extra,
    });
    return { url: `${this.issuer}/authorize?${params}`, request };
  }

  /** POST /token grant_type=authorization_code (RFC 6749 §4.1.3, PKCE verifier). */
  async exchangeCode({ code, redirectUri, codeVerifier }) {
    return this._post("/token", {
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri,
      client_id: this.clientId,
      code_verifier: codeVerifier,
    }, { form: true });
  }

  /**
   * The redirect's query (URLSearchParams, location.search, or the URL) for `request` from
   * authorizationRequest: checks `state` and `iss` (RFC 9207), turns an `error` into a
   * DidAuthError, exchanges the code, and checks the ID token's nonce, audience and issuer.
   * Returns the tokens and `idTokenClaims`.
   */
  async finishAuthorization(query, request) {
    const q = query instanceof URLSearchParams ? query
      : query instanceof URL || /^[a-z][a-z0-9+.-]*:/i.test(String(query)) ? new URL(String(query)).searchParams
        : new URLSearchParams(String(query)); // "?code=…&state=…" (location.search)
    if (!request || q.get("state") !== request.state) {
      throw new DidAuthError("state", "The sign-in response does not match a request from this page (state mismatch). Start again.");
    }
    if (q.get("iss") !== this.issuer) {
      throw new DidAuthError("iss", "The sign-in response came from an unexpected issuer.");
    }
    if (q.get("error")) {
      const words = q.get("error") === "access_denied" ? "You cancelled the sign-in." : q.get("error_description");
      throw new DidAuthError(q.get("error"), words ?? q.get("error"),
        { error: q.get("error"), error_description: q.get("error_description") ?? undefined });
    }
    const tokens = await this.exchangeCode({ code: q.get("code"), redirectUri: request.redirectUri, codeVerifier: request.verifier });
    let idTokenClaims;
    if (tokens.id_token) {
      idTokenClaims = decodeJwt(tokens.id_token);
      // A browser app cannot keep secrets; it checks what binds the token to its request.
      if (idTokenClaims.nonce !== request.nonce || idTokenClaims.aud !== this.clientId || idTokenClaims.iss !== this.issuer) {
        throw new DidAuthError("id_token", "The ID token does not belong to this sign-in (nonce, audience or issuer mismatch).");
      }
    }
    return { tokens, idTokenClaims };
  }

  /** A Session over `tokens` (a token response): fetch with the token, refresh, revoke. */
  session(tokens, extra = {}) {
    return new Session(this, tokens, extra);
  }
}

/**
 * Sign in with an EIP-1193 `provider` (from `discoverWallets`, or `window.ethereum`): SIWE
 * with the server's nonce; resolves to a Session. `dpop: true` binds the tokens to a new
 * non-extractable key (or pass a DpopKey). Other options are those of DidAuthClient and of
 * DidAuthClient#signIn.
 */
export async function signIn(provider, { issuer = undefined, clientId, audience = undefined, scope = undefined,
                                         dpop = false, fetch = undefined, onTokens = undefined, ...options } = {}) {
  const client = new DidAuthClient({
    ...(issuer ? { issuer } : {}), clientId, audience, scope, fetchImpl: fetch,
    dpop: dpop && dpop !== true ? dpop : undefined,
  });
  if (dpop === true) await client.useDpop();
  const result = await client.signIn({ provider, ...options });
  return client.session(result.tokens, {
    address: result.address, chainId: result.chainId, message: result.message, onTokens,
  });
}
