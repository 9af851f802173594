// The hosted sign-in page (/signin for dApps, /authorize for OpenID Connect clients).
// Configuration comes from the server in <main data-config>; nothing here is inline, so
// the page runs under a CSP without 'unsafe-inline'.
import {
  DidAuthClient,
  DidAuthError,
  chainName,
  discoverWallets,
} from "/static/client/index.js"; // the @did-auth/client package (clients/js)
import { mountAccount } from "/static/account.js"; // passkeys, TOTP, withdrawals

const $ = (id) => document.getElementById(id);
const main = $("signin");
const config = JSON.parse(main.dataset.config);
const client = new DidAuthClient({
  issuer: location.origin,
  clientId: config.client_id,
  audience: config.audience,
});

const button = $("signin-button");
const cancel = $("cancel-button");
const statusEl = $("status");
const errorEl = $("error");
let wallets = [];
let chosen = null;
let busy = false;

function setStatus(text, ok = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("ok", ok);
}

function showError(text, { focus = true } = {}) {
  errorEl.textContent = text;
  errorEl.hidden = false;
  if (focus) errorEl.focus();
}

function clearError() {
  errorEl.hidden = true;
  errorEl.textContent = "";
}

const STEP_TEXT = {
  connect: "Connecting to your wallet…",
  nonce: "Preparing the sign-in message…",
  sign: "Check your wallet and approve the sign-in message.",
  verify: "Checking the signature…",
};

function renderPermissions() {
  const list = $("scopes");
  for (const { scope, words } of config.scopes) {
    const li = document.createElement("li");
    li.textContent = words.charAt(0).toUpperCase() + words.slice(1);
    li.title = scope;
    li.dataset.scope = scope;
    list.append(li);
  }
  const chains = config.chain_ids.map(chainName).join(", ");
  $("audience-note").textContent =
    `Access is for “${config.audience}”. Accepted networks: ${chains}. ` +
    `You can revoke this sign-in at any time.`;
  if (config.mode === "authorize") {
    $("redirect-host").textContent = config.redirect_host;
    $("redirect-note").hidden = false;
    cancel.hidden = false;
  }
}

function renderWallets() {
  const box = $("wallets");
  const list = $("wallet-list");
  list.replaceChildren();
  if (wallets.length < 2) {
    box.hidden = true;
    return;
  }
  for (const wallet of wallets) {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("aria-pressed", String(chosen === wallet));
    if (wallet.icon) {
      const img = document.createElement("img");
      img.src = wallet.icon;
      img.alt = "";
      b.append(img);
    }
    b.append(document.createTextNode(wallet.name));
    b.addEventListener("click", () => {
      chosen = wallet;
      renderWallets();
      signIn();
    });
    list.append(b);
  }
  box.hidden = false;
}

async function findWallets() {
  wallets = await discoverWallets({ timeoutMs: 400 });
  if (wallets.length === 1) chosen = wallets[0];
  renderWallets();
  return wallets;
}

function missingWallet(focus = true) {
  showError(
    "No Ethereum wallet was found in this browser. Install a wallet extension (for example " +
      "MetaMask, Rabby or Coinbase Wallet), or open this page in your wallet app's built-in " +
      "browser, then press the button again.",
    { focus },
  );
  setStatus("");
}

function submitAuthorize({ message, signature }) {
  return client.completeAuthorization({ requestId: config.request_id, message, signature, otp: stepUpCode() });
}

// A step-up scope (e.g. wallet:withdraw) needs a second factor in the same request.
const needsCode = (config.step_up ?? []).length > 0;
function stepUpCode() {
  return needsCode ? $("otp-code").value.trim() : undefined;
}

// Signed in for did-auth itself (audience = the issuer): the account's own page, where a
// fresh login may add passkeys or an authenticator app and approve withdrawals.
function showAccount(result) {
  if (config.audience !== config.issuer || config.mode !== "signin" || config.origin || config.return_to) return;
  mountAccount($("account"), {
    issuer: location.origin,
    provider: chosen.provider,
    address: result.address,
    chainId: result.chainId,
    accessToken: result.tokens.access_token,
    tokenType: result.tokens.token_type === "DPoP" ? "DPoP" : "Bearer",
  });
}

function deliver(result) {
  const session = {
    issuer: location.origin,
    client_id: config.client_id,
    audience: config.audience,
    address: result.address,
    chain_id: result.chainId,
    tokens: result.tokens,
    received_at: Math.floor(Date.now() / 1000),
  };
  if (config.origin) {
    // Popup mode: hand the tokens to the registered opener origin only (checked by the
    // server; never "*"), and never keep them here when there is no opener.
    if (!window.opener || config.origin === "*" || new URL(config.origin).origin !== config.origin) {
      throw new DidAuthError("no_opener", NO_OPENER);
    }
    window.opener.postMessage({ type: "did-auth:signed-in", session }, config.origin);
    setStatus("Signed in. You can close this window.", true);
    window.close();
    return;
  }
  sessionStorage.setItem("did-auth:session", JSON.stringify(session));
  if (config.return_to) {
    setStatus("Signed in. Taking you back…", true);
    location.assign(config.return_to);
  } else {
    setStatus(`Signed in as ${result.address}.`, true);
  }
}

async function signIn() {
  if (busy || noOpener) return;
  clearError();
  if (!wallets.length) await findWallets();
  if (!wallets.length) {
    missingWallet();
    return;
  }
  if (needsCode && !/^[0-9]{6}$/.test(stepUpCode())) {
    showError("Type the 6-digit code from your authenticator app first.");
    $("otp-code").focus();
    return;
  }
  if (!chosen) {
    setStatus("Choose the wallet you want to use.");
    $("wallet-list").querySelector("button")?.focus();
    return;
  }
  busy = true;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const result = await client.signIn({
      provider: chosen.provider,
      chainIds: config.chain_ids,
      statement: config.statement,
      resources: config.resources,
      requestId: config.request_id,
      domain: location.host,
      uri: location.origin + location.pathname,
      expiresIn: Math.min(config.nonce_ttl, 300),
      onStep: (step) => {
        setStatus(STEP_TEXT[step] ?? "");
      },
      submit: config.mode === "authorize" ? submitAuthorize : null,
      otp: stepUpCode(),
    });
    $("message-preview").textContent = result.message;
    $("message-details").hidden = false;
    if (config.mode === "authorize") {
      setStatus("Signed in. Taking you back…", true);
      location.assign(result.tokens.redirect);
      return;
    }
    deliver(result);
    showAccount(result);
  } catch (err) {
    const e = err instanceof DidAuthError ? err : new DidAuthError("error", String(err?.message ?? err));
    if (e.code === "wallet_missing") missingWallet();
    else showError(e.message);
    setStatus(e.code === "request_expired" ? "" : "You can try again when you are ready.");
    button.textContent = "Try again";
  } finally {
    busy = false;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

async function cancelAuthorize() {
  cancel.disabled = true;
  try {
    const data = await client.cancelAuthorization(config.request_id);
    if (data?.redirect) {
      location.assign(data.redirect);
      return;
    }
    showError("This sign-in request has expired. Go back to the application and start again.");
  } catch (err) {
    showError(err instanceof DidAuthError && err.code === "network"
      ? "Could not reach the sign-in server. Check your connection and try again."
      : "This sign-in request has expired. Go back to the application and start again.");
  } finally {
    cancel.disabled = false;
  }
}

renderPermissions();
$("otp-field").hidden = !needsCode;
const NO_OPENER = "Open this sign-in from the application's own page: it was not opened by the application, so the tokens cannot be handed over.";
// Pop-up mode without the application window: nothing to hand the tokens to, and they
// are never kept on this site instead.
const noOpener = config.mode === "signin" && Boolean(config.origin) && !window.opener;
if (noOpener) {
  showError(NO_OPENER, { focus: false });
  button.disabled = true;
}
button.addEventListener("click", signIn);
cancel.addEventListener("click", cancelAuthorize);
findWallets().then((found) => {
  if (!found.length && !noOpener) missingWallet(false);
  document.documentElement.dataset.walletsReady = String(found.length);
});
