// Account security and withdrawals, shared by the hosted page (/signin) and the demo dApp.
// Needs an access token whose audience is did-auth itself (a fresh sign-in with
// audience = the issuer): only such a token may add or remove second factors.
//   - passkeys (WebAuthn Level 2): list, add (navigator.credentials.create), remove;
//   - an authenticator app (TOTP, RFC 6238): set up and confirm;
//   - a withdrawal: shown in plain words first, then signed by the wallet as EIP-712 typed
//     data (eth_signTypedData_v4), then confirmed with a passkey or a TOTP code; the answer
//     is an access token for exactly that withdrawal (RFC 9396 authorization_details).
// Everything is built with DOM calls (no inline script or HTML): the pages' CSP holds.

export function bufToB64u(buf) {
  const bytes = new Uint8Array(buf);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64uToBuf(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0)).buffer;
}

function descriptors(list) {
  return (list ?? []).map((c) => ({ ...c, id: b64uToBuf(c.id) }));
}

/** A PublicKeyCredential as the JSON the server parses (base64url members): the members
 * common to both ceremonies, and the response's own (`response`) after clientDataJSON. */
function credentialJSON(cred, response) {
  return {
    id: cred.id,
    rawId: bufToB64u(cred.rawId),
    type: cred.type,
    response: { clientDataJSON: bufToB64u(cred.response.clientDataJSON), ...response },
    clientExtensionResults: cred.getClientExtensionResults(),
    authenticatorAttachment: cred.authenticatorAttachment ?? undefined,
  };
}

/** navigator.credentials.create() for the server's creation options (JSON) -> JSON. */
export async function createPasskey({ publicKey }) {
  const cred = await navigator.credentials.create({
    publicKey: {
      ...publicKey,
      challenge: b64uToBuf(publicKey.challenge),
      user: { ...publicKey.user, id: b64uToBuf(publicKey.user.id) },
      excludeCredentials: descriptors(publicKey.excludeCredentials),
    },
  });
  const r = cred.response;
  return credentialJSON(cred, {
    attestationObject: bufToB64u(r.attestationObject),
    transports: typeof r.getTransports === "function" ? r.getTransports() : [],
  });
}

/** navigator.credentials.get() for the server's request options (JSON) -> JSON. */
export async function getPasskey({ publicKey }) {
  const cred = await navigator.credentials.get({
    publicKey: {
      ...publicKey,
      challenge: b64uToBuf(publicKey.challenge),
      allowCredentials: descriptors(publicKey.allowCredentials),
    },
  });
  const r = cred.response;
  return credentialJSON(cred, {
    authenticatorData: bufToB64u(r.authenticatorData),
    signature: bufToB64u(r.signature),
    userHandle: r.userHandle ? bufToB64u(r.userHandle) : null,
  });
}

// The binding of an assertion that authorises adding a passkey (the account's current factor).
export const REGISTRATION_BINDING = "urn:did-auth:second-factor:add";

const short = (a) => (a.length > 14 ? `${a.slice(0, 6)}…${a.slice(-4)}` : a);

/** A withdrawal in plain words, before anything is signed. */
export function withdrawalWords(d, expiresAt) {
  const until = new Date(expiresAt * 1000).toLocaleTimeString();
  return `Withdraw ${d.amount} ${d.asset} to ${d.destination} (${short(d.destination)}) on the ` +
    `${d.network} network, through ${d.audience}. Only this withdrawal, only once, until ${until}.`;
}

/** The EIP-712 typed data of a withdrawal (domain did-auth / 1 / the login's chain). */
export function withdrawalTypedData(d, { nonce, expiresAt, chainId }) {
  return {
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
      ],
      Withdrawal: [
        { name: "audience", type: "string" },
        { name: "asset", type: "string" },
        { name: "amount", type: "string" },
        { name: "destination", type: "string" },
        { name: "network", type: "string" },
        { name: "nonce", type: "string" },
        { name: "expiresAt", type: "uint256" },
      ],
    },
    primaryType: "Withdrawal",
    domain: { name: "did-auth", version: "1", chainId },
    message: { ...d, nonce, expiresAt },
  };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "hidden") node.hidden = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function call(issuer, path, { token, tokenType = "Bearer", method = "POST", body } = {}) {
  const headers = { authorization: `${tokenType} ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(issuer + path, {
    method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const err = new Error(data?.error_description ?? `HTTP ${r.status}`);
    err.code = data?.error;
    throw err;
  }
  return data;
}

/**
 * Mount the panel in `root`. `ctx`: {issuer (the server's origin for fetch), provider
 * (EIP-1193), address, chainId, accessToken (audience = issuer), tokenType, audiences
 * (the APIs a withdrawal may be for), onWithdrawal(tokenResponse, details)}.
 */
export function mountAccount(root, ctx) {
  const api = (path, opts = {}) => call(ctx.issuer, path, { token: ctx.accessToken, tokenType: ctx.tokenType, ...opts });
  const status = el("p", { id: "account-status", class: "status", role: "status", "aria-live": "polite" });
  const say = (text, ok = false) => { status.textContent = text; status.classList.toggle("ok", ok); };
  const fail = (err) => say(err?.message ?? String(err));

  // --- passkeys -------------------------------------------------------------------------
  const keyList = el("ul", { id: "passkey-list" });
  const addKey = el("button", { id: "add-passkey", type: "button", class: "primary", text: "Add a passkey" });
  const addKeyCode = el("input", { type: "text", id: "add-passkey-otp", inputmode: "numeric", autocomplete: "one-time-code", maxlength: "6" });
  const addKeyCodeBox = el("p", { hidden: true },
    el("label", { for: "add-passkey-otp", text: "Code from your authenticator app (your current second factor)" }), addKeyCode);
  async function renderKeys() {
    const { passkeys } = await api("/passkeys", { method: "GET" });
    keyList.replaceChildren(...(passkeys.length ? passkeys.map((p) => {
      const remove = el("button", { type: "button", class: "secondary", text: "Remove" });
      remove.addEventListener("click", async () => {
        try {
          await api(`/passkeys/${encodeURIComponent(p.id)}`, { method: "DELETE" });
          say("Passkey removed.", true);
          await renderKeys();
        } catch (err) { fail(err); }
      });
      const kind = p.amr.includes("hwk") ? "kept on this device" : "synced between your devices";
      return el("li", { "data-passkey": p.id }, `${p.name} (${kind}) `, remove);
    }) : [el("li", { text: "No passkey yet." })]));
    keyList.dataset.count = String(passkeys.length);
  }
  // Adding a second factor to an account with a passkey: an assertion of one of them
  // for the registration binding, as the body member `webauthn`.
  async function passkeyConfirmation() {
    say("Confirm with one of your passkeys first…");
    const request = await api("/passkeys/assert/options", { body: { binding: REGISTRATION_BINDING } });
    return { webauthn: await getPasskey(request) };
  }
  addKey.addEventListener("click", async () => {
    try {
      // With a factor enrolled, adding one needs it: a passkey of the account, or the code.
      let body = {};
      if (Number(keyList.dataset.count) > 0) {
        body = await passkeyConfirmation();
      } else if (addKeyCode.value.trim()) {
        body = { otp: addKeyCode.value.trim() };
      }
      let options;
      try {
        options = await api("/passkeys/register/options", { body });
      } catch (err) {
        if (err.code === "access_denied" && !body.otp) {
          addKeyCodeBox.hidden = false;
          addKeyCode.focus();
          throw new Error("Your account has an authenticator app: type its code, then press “Add a passkey” again.");
        }
        throw err;
      }
      say("Follow your browser's prompt to create a passkey…");
      const credential = await createPasskey(options);
      await api("/passkeys/register", { body: { credential } });
      say("Passkey added.", true);
      await renderKeys();
    } catch (err) { fail(err); }
  });

  // --- authenticator app (TOTP) ---------------------------------------------------------
  const otpStart = el("button", { id: "otp-setup", type: "button", class: "secondary", text: "Set up an authenticator app" });
  const otpSecret = el("p", { id: "otp-secret", class: "fine", hidden: true });
  const otpCode = el("input", { type: "text", id: "otp-confirm-code", inputmode: "numeric", autocomplete: "one-time-code", maxlength: "6", "aria-label": "Code from the authenticator app" });
  const otpConfirm = el("button", { id: "otp-confirm", type: "button", class: "secondary", text: "Confirm code" });
  const otpBox = el("div", { hidden: true }, otpCode, otpConfirm);
  otpStart.addEventListener("click", async () => {
    try {
      // The first TOTP of an account with a passkey needs that passkey (its current factor).
      let body = {};
      if (Number(keyList.dataset.count) > 0) {
        body = await passkeyConfirmation();
      }
      const r = await api("/otp/enroll", { body });
      otpSecret.textContent = `Add this key to your authenticator app: ${r.secret} (or open ${r.otpauth_uri}), then type the code it shows.`;
      otpSecret.dataset.secret = r.secret;
      otpSecret.hidden = false;
      otpBox.hidden = false;
      otpCode.focus();
    } catch (err) { fail(err); }
  });
  otpConfirm.addEventListener("click", async () => {
    try {
      await api("/otp/confirm", { body: { otp: otpCode.value.trim() } });
      say("Authenticator app set up.", true);
      otpBox.hidden = true;
    } catch (err) { fail(err); }
  });

  // --- a withdrawal -----------------------------------------------------------------------
  const field = (id, label, value = "") => {
    const input = el("input", { type: "text", id, autocomplete: "off", spellcheck: "false" });
    input.value = value;
    return [el("label", { for: id, text: label }), input];
  };
  const audiences = ctx.audiences?.length ? ctx.audiences : ["trading-api"];
  const form = el("form", { id: "withdraw-form" },
    ...field("wd-asset", "Asset", "ETH"), ...field("wd-amount", "Amount", ""),
    ...field("wd-destination", "Destination address", ""), ...field("wd-network", "Network", "ethereum"),
    ...field("wd-audience", "Trading API", audiences[0]),
    el("div", { class: "actions" }, el("button", { id: "wd-review", type: "submit", class: "primary", text: "Review withdrawal" })));
  const words = el("p", { id: "withdrawal-words", class: "summary", hidden: true });
  const factorCode = el("input", { type: "text", id: "wd-otp", inputmode: "numeric", autocomplete: "one-time-code", maxlength: "6", "aria-describedby": "withdrawal-words" });
  const approve = el("button", { id: "wd-approve", type: "button", class: "primary", text: "Sign with wallet and confirm with passkey" });
  const approveOtp = el("button", { id: "wd-approve-otp", type: "button", class: "secondary", text: "Sign with wallet and confirm with this code" });
  const approveBox = el("div", { hidden: true }, words, el("div", { class: "actions" }, approve),
    el("label", { for: "wd-otp", text: "Or a code from your authenticator app" }), factorCode, approveOtp);
  const result = el("pre", { id: "withdrawal-token", hidden: true });
  let pending = null;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const d = { audience: v("wd-audience"), asset: v("wd-asset"), amount: v("wd-amount"),
      destination: v("wd-destination"), network: v("wd-network") };
    if (!d.amount || !d.destination) { say("Enter an amount and a destination."); return; }
    pending = { d, expiresAt: Math.floor(Date.now() / 1000) + 240 };
    words.textContent = withdrawalWords(d, pending.expiresAt);
    words.hidden = false;
    approveBox.hidden = false;
    result.hidden = true;
    say("Check the withdrawal above. Your wallet will show the same values to sign.");
  });
  async function authorize(useOtp) {
    if (!pending) return;
    try {
      const { d, expiresAt } = pending;
      const { nonce } = await api("/transactions/nonce", { body: {} });
      say("Check your wallet and sign the withdrawal…");
      const typed = withdrawalTypedData(d, { nonce, expiresAt, chainId: ctx.chainId });
      const signature = await ctx.provider.request({
        method: "eth_signTypedData_v4", params: [ctx.address, JSON.stringify(typed)],
      });
      const body = { authorization_details: [{ type: "withdrawal", ...d }], nonce, expires_at: expiresAt, signature };
      if (useOtp) body.otp = factorCode.value.trim();
      else {
        say("Confirm with your passkey…");
        body.webauthn = await getPasskey(await api("/passkeys/assert/options", { body: { binding: nonce } }));
      }
      const tokens = await api("/transactions/authorize", { body });
      result.textContent = JSON.stringify(tokens, null, 2);
      result.dataset.token = tokens.access_token;
      result.hidden = false;
      pending = null;
      approveBox.hidden = true;
      say("Withdrawal approved: the token is good for exactly this withdrawal, once.", true);
      await ctx.onWithdrawal?.(tokens, d);
    } catch (err) { fail(err); }
  }
  approve.addEventListener("click", () => authorize(false));
  approveOtp.addEventListener("click", () => authorize(true));

  root.replaceChildren(
    el("h2", { text: "Passkeys" }), keyList, addKeyCodeBox, el("div", { class: "actions" }, addKey),
    el("h2", { text: "Authenticator app" }), el("div", { class: "actions" }, otpStart), otpSecret, otpBox,
    el("h2", { text: "Withdraw" }), form, approveBox, result, status,
  );
  root.hidden = false;
  return renderKeys().then(() => { root.dataset.ready = "true"; }).catch(fail);
}
