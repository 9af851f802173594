// The demo dApp served by `did-auth serve` at /demo/. Two ways in:
//  - "Sign in with your wallet": the hosted /signin page does the SIWE dance and returns
//    here with the tokens in this tab's sessionStorage;
//  - "Sign in with OpenID Connect": this page is an OIDC public client (code flow + PKCE
//    S256), the way an existing OIDC app would use did-auth.
// Then it shows the access token's claims, calls the trading API and revokes the session.
import { DidAuthClient, DidAuthError, decodeJwt } from "/static/client/index.js"; // @did-auth/client

const $ = (id) => document.getElementById(id);
// Set by the server (the demo client's configuration), never by the address bar: the
// client, and the only trading-API origins this page may send its tokens to.
const CONFIG = JSON.parse($("demo").dataset.config);
const CLIENT_ID = CONFIG.client_id;
const AUDIENCE = CONFIG.audience;
const SCOPE = CONFIG.scope;
const API_ORIGINS = CONFIG.api_origins;
const SESSION_KEY = "did-auth:session";
const OIDC_KEY = "did-auth:oidc-request";
const API_KEY = "did-auth:demo-api";
const client = new DidAuthClient({ issuer: location.origin, clientId: CLIENT_ID, audience: AUDIENCE, scope: SCOPE });

function setStatus(text, ok = false) {
  $("status").textContent = text;
  $("status").classList.toggle("ok", ok);
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = false;
  box.focus();
}

function clearError() {
  $("error").hidden = true;
}

// --- trading API URL -------------------------------------------------------------------

// An allowed origin is listed exactly, or as "http://127.0.0.1:*" (that host, any port).
function apiOriginAllowed(origin) {
  return API_ORIGINS.some((allowed) => {
    if (!allowed.endsWith(":*")) return origin === allowed;
    const base = allowed.slice(0, -2);
    return origin === base || (origin.startsWith(base + ":") && /^[0-9]+$/.test(origin.slice(base.length + 1)));
  });
}

// The URL the page may call with the access token, or null: http(s), no credentials, and
// on one of the configured origins only (whatever ?api=, storage or the input say).
function validApiUrl(value) {
  try {
    const u = new URL(value);
    if ((u.protocol !== "http:" && u.protocol !== "https:") || u.username || u.password) return null;
    if (!apiOriginAllowed(u.origin)) return null;
    return u.origin + u.pathname.replace(/\/+$/, "");
  } catch {
    return null;
  }
}

function allowedText() {
  return API_ORIGINS.length
    ? `Allowed trading API origins: ${API_ORIGINS.join(", ")}.`
    : "No trading API is configured for this demo (demo_api_origins).";
}

const refusedApi = [];

function initialApi() {
  const fromQuery = new URLSearchParams(location.search).get("api");
  if (fromQuery !== null && !validApiUrl(fromQuery)) refusedApi.push(fromQuery);
  return validApiUrl(fromQuery ?? "") ?? validApiUrl(sessionStorage.getItem(API_KEY) ?? "") ?? CONFIG.api_default;
}

const apiInput = $("api-url");
apiInput.value = initialApi();
$("api-allowed").textContent = allowedText();
if (validApiUrl(apiInput.value)) sessionStorage.setItem(API_KEY, apiInput.value);
else sessionStorage.removeItem(API_KEY);
apiInput.addEventListener("change", () => {
  const v = validApiUrl(apiInput.value);
  if (v) {
    clearError();
    sessionStorage.setItem(API_KEY, v);
  } else {
    showError(`This demo does not send tokens to ${apiInput.value}. ${allowedText()}`);
  }
});

function api() {
  const v = validApiUrl(apiInput.value);
  if (!v) throw new DidAuthError("config", `This demo does not send tokens to ${apiInput.value || "an empty URL"}. ${allowedText()}`);
  return v;
}

// --- session ---------------------------------------------------------------------------

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
  } catch {
    return null;
  }
}

function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

// The package's Session over the stored tokens: its fetch attaches the access token and
// renews it once when the API answers 401 invalid_token; new tokens are stored at once
// (the refresh token rotates).
function liveSession(stored) {
  return client.session(stored.tokens, {
    onTokens: (s) => {
      stored.tokens = s.tokens;
      saveSession(stored);
      render();
    },
  });
}

function row(name, value) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = name;
  const td = document.createElement("td");
  td.textContent = value;
  tr.append(th, td);
  return tr;
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

function render() {
  const session = loadSession();
  $("signed-in").hidden = !session;
  $("signed-out").hidden = Boolean(session);
  if (!session) return;
  const claims = decodeJwt(session.tokens.access_token);
  $("who").textContent = claims.sub.split(":").pop();
  const rows = [
    row("sub", claims.sub),
    row("aud", String(claims.aud)),
    row("scope", claims.scope),
    row("client_id", claims.client_id),
    row("amr", (claims.amr ?? []).join(", ")),
    row("auth_time", when(claims.auth_time)),
    row("expires", when(claims.exp)),
    row("sid", claims.sid),
    row("token type", session.tokens.token_type),
    row("signed in via", session.via ?? "hosted sign-in page"),
  ];
  if (session.id_token_claims) {
    rows.push(row("ID token", `sub ${session.id_token_claims.sub}, nonce checked`));
  }
  $("claims").replaceChildren(...rows);
}

// --- sign in ---------------------------------------------------------------------------

$("signin").addEventListener("click", () => {
  const params = new URLSearchParams({
    client_id: CLIENT_ID,
    audience: AUDIENCE,
    scope: SCOPE,
    return_to: "/demo/",
  });
  location.assign(`/signin?${params}`);
});

const REDIRECT_URI = location.origin + "/demo/";

$("signin-oidc").addEventListener("click", () => run(async () => {
  // Code flow with PKCE S256, state and nonce, built by the client package.
  const { url, request } = await client.authorizationRequest({ redirectUri: REDIRECT_URI, scope: SCOPE, audience: AUDIENCE });
  sessionStorage.setItem(OIDC_KEY, JSON.stringify(request));
  location.assign(url);
}));

async function finishOidc(query) {
  // Whatever happens, the code and state leave the address bar and history.
  history.replaceState(null, "", "/demo/");
  const request = JSON.parse(sessionStorage.getItem(OIDC_KEY) ?? "null");
  sessionStorage.removeItem(OIDC_KEY);
  // State, iss (RFC 9207), the code exchange and the ID token's nonce / aud / iss.
  const { tokens, idTokenClaims } = await client.finishAuthorization(query, request);
  saveSession({
    issuer: location.origin,
    client_id: CLIENT_ID,
    tokens,
    id_token_claims: { sub: idTokenClaims.sub },
    via: "OpenID Connect (code + PKCE)",
  });
}

// --- trading API ---------------------------------------------------------------------------

async function callApi(path, init = {}) {
  const session = loadSession();
  if (!session) throw new DidAuthError("signed_out", "Sign in first.");
  let response;
  try {
    response = await liveSession(session).fetch(api() + path, { ...init, cache: "no-store" });
  } catch (err) {
    if (!(err instanceof DidAuthError) || err.code !== "network") throw err;
    throw new DidAuthError("network", `Could not reach the trading API at ${api()}. Is it running, and does it allow this page's origin (CORS)?`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const challenge = response.headers.get("www-authenticate");
    const why = body?.error_description ?? body?.error ?? `HTTP ${response.status}`;
    throw new DidAuthError("api", `The trading API refused the request (${response.status}): ${why}${challenge ? ` [${challenge}]` : ""}`);
  }
  return body;
}

$("load-account").addEventListener("click", () => run(async () => {
  setStatus("Loading the account…");
  const account = await callApi("/account");
  const rows = Object.entries(account.balances ?? {}).map(([asset, amount]) => row(asset, amount));
  rows.push(row("open orders", String(account.open_orders)), row("scopes", (account.scopes ?? []).join(" ")));
  $("account").replaceChildren(...rows);
  $("account").dataset.loaded = "true";
  setStatus("Account loaded from the trading API.", true);
}));

$("place-order").addEventListener("click", () => run(async () => {
  setStatus("Placing a demo order…");
  const order = await callApi("/orders", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ symbol: "ETH-USDC", side: "buy", type: "limit", quantity: "0.1", price: "2500" }),
  });
  const li = document.createElement("li");
  li.textContent = `${order.order_id}: ${order.side} ${order.quantity} ${order.symbol} at ${order.price} (${order.status})`;
  li.dataset.orderId = order.order_id;
  const list = $("orders");
  if (!list.querySelector("[data-order-id]")) list.replaceChildren();
  list.append(li);
  setStatus(`Order ${order.order_id} accepted.`, true);
}));

$("refresh").addEventListener("click", () => run(async () => {
  const session = loadSession();
  setStatus("Refreshing the tokens…");
  await liveSession(session).refresh(); // stores the new tokens (onTokens)
  setStatus("New access token issued; the refresh token rotated.", true);
}));

$("revoke").addEventListener("click", () => run(async () => {
  const session = loadSession();
  setStatus("Revoking the session…");
  await liveSession(session).revoke(); // the refresh token (the whole session), then the access token
  let refused = false;
  try {
    await client.refresh(session.tokens.refresh_token);
  } catch (err) {
    refused = err instanceof DidAuthError;
  }
  sessionStorage.removeItem(SESSION_KEY);
  render();
  setStatus(refused
    ? "Session revoked. Checked: did-auth now refuses its refresh token."
    : "Session revoked.", true);
}));

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(SESSION_KEY);
  render();
  setStatus("Tokens forgotten in this tab (the session itself is still valid until it expires).");
});

async function run(fn) {
  clearError();
  try {
    await fn();
  } catch (err) {
    showError(err instanceof DidAuthError ? err.message : String(err?.message ?? err));
    setStatus("");
  }
}

// --- start -----------------------------------------------------------------------------------

const query = new URLSearchParams(location.search);
if (query.has("code") || query.has("error")) {
  await run(async () => {
    setStatus("Finishing the OpenID Connect sign-in…");
    await finishOidc(query);
    setStatus("Signed in with OpenID Connect.", true);
  });
} else if (loadSession()) {
  setStatus("Signed in.", true);
}
if (refusedApi.length) {
  showError(`Ignored ?api=${refusedApi[0]}: this demo sends tokens only to its configured trading API. ${allowedText()}`);
}
render();
document.documentElement.dataset.ready = "true";
