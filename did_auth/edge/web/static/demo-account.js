// The demo dApp's account security and withdrawals (kept apart from demo.js): a fresh
// sign-in for did-auth itself (audience = the issuer; the wallet signs once more), then the
// shared panel (account.js): passkeys, an authenticator app, and withdrawals, which this
// page sends to the trading API (POST /withdrawals) once approved.
import { DidAuthClient, discoverWallets } from "/static/client/index.js"; // @did-auth/client
import { mountAccount } from "/static/account.js";

const $ = (id) => document.getElementById(id);
const CONFIG = JSON.parse($("demo").dataset.config);
const client = new DidAuthClient({ issuer: location.origin, clientId: CONFIG.client_id });

// The trading API chosen on the page, only when it is one of the configured origins (the
// page's CSP allows no other anyway).
function apiUrl() {
  try {
    const u = new URL($("api-url").value);
    const ok = CONFIG.api_origins.some((o) => o === u.origin ||
      (o.endsWith(":*") && u.origin.startsWith(o.slice(0, -2) + ":")));
    return ok ? u.origin + u.pathname.replace(/\/+$/, "") : null;
  } catch {
    return null;
  }
}

async function sendWithdrawal(tokens, d) {
  const out = $("withdrawal-result");
  const api = apiUrl();
  if (!api) return;
  const r = await fetch(`${api}/withdrawals`, {
    method: "POST",
    headers: { authorization: `Bearer ${tokens.access_token}`, "content-type": "application/json" },
    body: JSON.stringify({ asset: d.asset, amount: d.amount, address: d.destination, network: d.network }),
  });
  out.textContent = `Trading API answered ${r.status}: ${await r.text()}`;
  out.hidden = false;
}

$("security-signin").addEventListener("click", async () => {
  const button = $("security-signin");
  button.disabled = true;
  try {
    const [wallet] = await discoverWallets({ timeoutMs: 400 });
    const result = await client.signIn({
      provider: wallet?.provider ?? window.ethereum,
      audience: CONFIG.issuer,
      scope: "account:read",
      domain: location.host,
      uri: location.origin + location.pathname,
    });
    await mountAccount($("security-panel"), {
      issuer: location.origin,
      provider: wallet?.provider ?? window.ethereum,
      address: result.address,
      chainId: result.chainId,
      accessToken: result.tokens.access_token,
      tokenType: "Bearer",
      audiences: [CONFIG.audience],
      onWithdrawal: sendWithdrawal,
    });
  } catch (err) {
    $("status").textContent = err?.message ?? String(err);
  } finally {
    button.disabled = false;
  }
});
