#!/usr/bin/env node
// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) against a real
// did-auth server and a real trading API. The wallet is an EIP-1193 provider injected into
// every page; its requests are forwarded to Node, where an ethers v6 Wallet (the test's own
// key) answers and signs. It is announced both as window.ethereum and via EIP-6963.
//
//   node tests/edge/web/browser_e2e.mjs SCENARIO   with env E2E = JSON {issuer, api, privateKey, artifacts}
//
// Scenarios: hosted, oidc, popup, dpop, rejected, missing, wrong_chain. Prints one JSON line
// {"scenario", "ok": true, ...facts} and exits 0, or prints the failure and exits 1.
import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Wallet, getBytes, toUtf8String } from "ethers";

const scenario = process.argv[2];
const cfg = JSON.parse(process.env.E2E ?? "{}");
const { issuer, api, privateKey, artifacts, dappPort } = cfg;
mkdirSync(artifacts, { recursive: true });

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const WALLET_ICON =
  "data:image/svg+xml;base64," +
  Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><circle cx="12" cy="12" r="11" fill="#e2761b"/></svg>',
  ).toString("base64");

function fail(message) {
  throw new Error(message);
}

// Runs in the page before any of its scripts (page.addInitScript).
function injectWallet(info) {
  const provider = {
    isTestWallet: true,
    async request({ method, params }) {
      const answer = await window.__e2eWallet(method, params ?? []);
      if (answer && answer.error) {
        const err = new Error(answer.error.message);
        err.code = answer.error.code;
        throw err;
      }
      return answer.result;
    },
    on() {},
    removeListener() {},
  };
  Object.defineProperty(window, "ethereum", { value: provider, configurable: true });
  const announce = () =>
    window.dispatchEvent(
      new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }),
    );
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
}

async function newContext(browser, { wallet = null, mode = "sign", chainId = 31337, viewport } = {}) {
  const context = await browser.newContext({ viewport: viewport ?? { width: 1100, height: 900 } });
  const signed = [];
  const calls = [];
  if (wallet) {
    await context.exposeFunction("__e2eWallet", async (method, params) => {
      calls.push(method);
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          // Lower-case, as many wallets answer: the page must EIP-55 checksum it itself.
          return { result: [wallet.address.toLowerCase()] };
        case "eth_chainId":
          return { result: "0x" + chainId.toString(16) };
        case "wallet_switchEthereumChain":
          return { error: { code: 4902, message: "Unrecognized chain ID." } };
        case "personal_sign": {
          if (mode === "reject") return { error: { code: 4001, message: "User rejected the request." } };
          const [data, address] = params;
          if (String(address).toLowerCase() !== wallet.address.toLowerCase()) {
            return { error: { code: 4100, message: "unknown account" } };
          }
          const text = toUtf8String(getBytes(data));
          signed.push(text);
          return { result: await wallet.signMessage(getBytes(data)) };
        }
        default:
          return { error: { code: 4200, message: `unsupported method ${method}` } };
      }
    });
    await context.addInitScript(injectWallet, {
      uuid: "5e1f3c2a-7b44-4c1e-9d0f-2a6b8c9d0e1f",
      name: "Test Wallet (ethers)",
      icon: WALLET_ICON,
      rdns: "org.did-auth.test-wallet",
    });
  }
  return { context, signed, calls };
}

function watch(page, problems) {
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    // Failed HTTP answers are logged by Chromium too; the scenarios check statuses themselves.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${msg.text()}`);
    }
  });
}

async function sessionOf(page) {
  return page.evaluate(() => sessionStorage.getItem("did-auth:session"));
}

async function signInPageReady(page) {
  await page.waitForSelector("html[data-wallets-ready]", { timeout: 10_000 });
}

const scenarios = {
  // Demo dApp -> hosted /signin -> wallet signs -> back in the dApp -> /account, an order,
  // then the session is revoked.
  async hosted(browser, wallet) {
    const { context, signed } = await newContext(browser, { wallet });
    const page = await context.newPage();
    const problems = [];
    watch(page, problems);
    await page.goto(`${issuer}/demo/?api=${encodeURIComponent(api)}`);
    await page.waitForSelector("html[data-ready]");
    await page.getByRole("button", { name: "Sign in with your wallet" }).click();
    await page.waitForURL(/\/signin\?/);
    await signInPageReady(page);
    await page.screenshot({ path: join(artifacts, "signin-page.png"), fullPage: true });
    await page.getByRole("button", { name: "Connect wallet and sign in" }).click();
    await page.waitForURL(/\/demo\/$/, { timeout: 20_000 });
    await page.waitForSelector("#signed-in:not([hidden])");
    const who = (await page.locator("#who").textContent()).trim();
    if (who !== wallet.address) fail(`signed in as ${who}, expected ${wallet.address}`);

    const [accountResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/account`),
      page.getByRole("button", { name: "Load account" }).click(),
    ]);
    if (accountResponse.status() !== 200) fail(`/account answered ${accountResponse.status()}`);
    const account = await accountResponse.json();
    await page.waitForSelector("#account[data-loaded]");
    const accountText = await page.locator("#account").textContent();
    if (!accountText.includes("USDC")) fail(`account table: ${accountText}`);

    const [orderResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/orders`),
      page.getByRole("button", { name: "Place demo order" }).click(),
    ]);
    if (orderResponse.status() !== 201) fail(`/orders answered ${orderResponse.status()}`);
    await page.waitForSelector("#orders li[data-order-id]");
    await page.screenshot({ path: join(artifacts, "demo-signed-in.png"), fullPage: true });

    await page.getByRole("button", { name: "Revoke session" }).click();
    await page.waitForFunction(() => document.getElementById("status").textContent.includes("revoked"));
    const status = await page.locator("#status").textContent();
    const after = await sessionOf(page);
    if (after !== null) fail("tokens still stored after revocation");
    if (problems.length) fail(problems.join("; "));
    const message = signed[0] ?? "";
    for (const part of [`\n${wallet.address}\n`, "\nExpiration Time: ", "\nResources:\n- urn:recap:"]) {
      if (!message.includes(part)) fail(`signed message lacks ${JSON.stringify(part)}:\n${message}`);
    }
    await context.close();
    return { account, status, message, orderStatus: orderResponse.status() };
  },

  // The demo as an OIDC public client: /authorize page -> signature -> code -> /token.
  async oidc(browser, wallet) {
    const { context, signed } = await newContext(browser, { wallet });
    const page = await context.newPage();
    const problems = [];
    watch(page, problems);
    await page.goto(`${issuer}/demo/?api=${encodeURIComponent(api)}`);
    await page.waitForSelector("html[data-ready]");
    await page.getByRole("button", { name: /OpenID Connect/ }).click();
    await page.waitForURL(/\/authorize\?/);
    await signInPageReady(page);
    await page.screenshot({ path: join(artifacts, "authorize-page.png"), fullPage: true });
    await page.getByRole("button", { name: "Connect wallet and sign in" }).click();
    await page.waitForURL(/\/demo\/$/, { timeout: 20_000 });
    await page.waitForSelector("#signed-in:not([hidden])");
    const [accountResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/account`),
      page.getByRole("button", { name: "Load account" }).click(),
    ]);
    if (accountResponse.status() !== 200) fail(`/account answered ${accountResponse.status()}`);
    const claims = await page.locator("#claims").textContent();
    if (!claims.includes("OpenID Connect")) fail(`claims table: ${claims}`);
    if (problems.length) fail(problems.join("; "));
    await context.close();
    return { message: signed[0], accountStatus: accountResponse.status() };
  },

  // A dApp on another origin imports the client module from did-auth and signs in through
  // the hosted page in a popup; the tokens come back by postMessage to that origin only.
  async popup(browser, wallet) {
    const server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><meta charset="utf-8"><title>Other dApp</title>
<button id="go">Sign in</button><pre id="out"></pre>
<script type="module">
import { signInWithPopup, decodeJwt } from "${issuer}/static/client/index.js";
document.getElementById("go").addEventListener("click", async () => {
  const out = document.getElementById("out");
  try {
    const session = await signInWithPopup({ issuer: "${issuer}", clientId: "demo",
                                            audience: "trading-api", scope: "account:read" });
    out.textContent = JSON.stringify({ ok: true, sub: decodeJwt(session.tokens.access_token).sub });
  } catch (e) {
    out.textContent = JSON.stringify({ ok: false, code: e.code, message: e.message });
  }
});
</script>`);
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const origin = `http://127.0.0.1:${server.address().port}`;
    try {
      const { context } = await newContext(browser, { wallet });
      const page = await context.newPage();
      const problems = [];
      watch(page, problems);
      await page.goto(origin + "/");
      const [popup] = await Promise.all([page.waitForEvent("popup"), page.click("#go")]);
      watch(popup, problems);
      await signInPageReady(popup);
      if (!popup.url().includes(`origin=${encodeURIComponent(origin)}`)) fail(`popup at ${popup.url()}`);
      await popup.getByRole("button", { name: "Connect wallet and sign in" }).click();
      await page.waitForFunction(() => document.getElementById("out").textContent !== "", null, { timeout: 20_000 });
      const result = JSON.parse(await page.locator("#out").textContent());
      if (!result.ok) fail(`popup sign-in failed: ${result.code}: ${result.message}`);
      if (result.sub !== `did:pkh:eip155:31337:${wallet.address}`) fail(`sub ${result.sub}`);
      if (problems.length) fail(problems.join("; "));
      await context.close();
      return { origin, sub: result.sub };
    } finally {
      server.close();
    }
  },

  // A dApp on another origin uses the client package directly (imported from did-auth's
  // /static/client/): signIn with the EIP-6963 wallet and a DPoP key that WebCrypto will not
  // export, then DPoP-bound calls to the trading API (CORS), a refresh, and another call.
  async dpop(browser, wallet) {
    const server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><meta charset="utf-8"><title>DPoP dApp</title>
<button id="go">Sign in</button><pre id="out"></pre><pre id="resumed"></pre>
<script type="module">
import { DidAuthClient, discoverWallets, loadDpopKey, saveDpopKey, signIn } from "${issuer}/static/client/index.js";
import * as legacy from "${issuer}/static/did-auth-client.js";
const saved = sessionStorage.getItem("dpop-session");
if (saved) {
  // After a reload: the key from IndexedDB, still non-extractable, still bound to the tokens.
  const out = document.getElementById("resumed");
  try {
    const key = await loadDpopKey({ name: "dpop-dapp" });
    const client = new DidAuthClient({ issuer: "${issuer}", clientId: "demo", dpop: key });
    const session = client.session(JSON.parse(saved).tokens);
    const account = await session.fetch("${api}/account");
    out.textContent = JSON.stringify({ ok: true, extractable: key.keyPair.privateKey.extractable,
      thumbprint: key.thumbprint, account: account.status });
  } catch (e) {
    out.textContent = JSON.stringify({ ok: false, message: String(e?.message ?? e) });
  }
}
document.getElementById("go").addEventListener("click", async () => {
  const out = document.getElementById("out");
  try {
    const [found] = await discoverWallets();
    const session = await signIn(found.provider, { issuer: "${issuer}", clientId: "demo",
      audience: "trading-api", scope: "account:read trade:write", dpop: true,
      statement: "Sign in to the DPoP dApp." });
    const privateKey = session.client.dpopKey.keyPair.privateKey;
    let exportError = null;
    try { await crypto.subtle.exportKey("pkcs8", privateKey); } catch (e) { exportError = e.name; }
    const account = await session.fetch("${api}/account");
    const order = await session.fetch("${api}/orders", { method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ symbol: "ETH-USDC", side: "buy", type: "limit", quantity: "0.1", price: "2500" }) });
    const before = session.refreshToken;
    await session.refresh();
    const again = await session.fetch("${api}/account");
    const bearer = await fetch("${api}/account", { headers: { authorization: "Bearer " + session.accessToken } });
    await saveDpopKey(session.client.dpopKey, { name: "dpop-dapp" });
    sessionStorage.setItem("dpop-session", JSON.stringify(session.toJSON()));
    out.textContent = JSON.stringify({ ok: true, tokenType: session.tokenType, jkt: session.claims.cnf?.jkt,
      thumbprint: session.client.dpopKey.thumbprint, extractable: privateKey.extractable, exportError,
      account: account.status, order: order.status, rotated: before !== session.refreshToken,
      again: again.status, bearer: bearer.status, sameModule: legacy.signIn === signIn,
      sub: session.claims.sub });
  } catch (e) {
    out.textContent = JSON.stringify({ ok: false, code: e.code, message: e.message });
  }
});
</script>`);
    });
    await new Promise((resolve) => server.listen(dappPort, "127.0.0.1", resolve));
    try {
      const { context } = await newContext(browser, { wallet });
      const page = await context.newPage();
      const problems = [];
      watch(page, problems);
      await page.goto(`http://127.0.0.1:${dappPort}/`);
      await page.click("#go");
      await page.waitForFunction(() => document.getElementById("out").textContent !== "", null, { timeout: 20_000 });
      const result = JSON.parse(await page.locator("#out").textContent());
      if (!result.ok) fail(`DPoP sign-in failed: ${result.code}: ${result.message}`);
      await page.reload();
      await page.waitForFunction(() => document.getElementById("resumed").textContent !== "", null, { timeout: 20_000 });
      const resumed = JSON.parse(await page.locator("#resumed").textContent());
      if (!resumed.ok) fail(`DPoP session not resumed after a reload: ${resumed.message}`);
      if (problems.length) fail(problems.join("; "));
      await context.close();
      return { ...result, resumed };
    } finally {
      server.close();
    }
  },

  // The user says no in the wallet: a clear message, no token anywhere.
  async rejected(browser, wallet) {
    const { context, calls } = await newContext(browser, { wallet, mode: "reject" });
    const page = await context.newPage();
    await page.goto(`${issuer}/signin?client_id=demo&audience=trading-api&scope=account:read&return_to=/demo/`);
    await signInPageReady(page);
    await page.getByRole("button", { name: "Connect wallet and sign in" }).click();
    const error = page.getByRole("alert");
    await error.waitFor({ state: "visible" });
    const text = await error.textContent();
    if (!/declined/.test(text)) fail(`error text: ${text}`);
    if (!page.url().includes("/signin")) fail(`navigated to ${page.url()}`);
    if ((await sessionOf(page)) !== null) fail("a token was stored");
    if (!calls.includes("personal_sign")) fail("the wallet was never asked to sign");
    await page.screenshot({ path: join(artifacts, "signin-rejected.png"), fullPage: true });
    await context.close();
    return { error: text };
  },

  // No wallet in the browser: a clear message, before and after pressing the button.
  async missing(browser) {
    const { context } = await newContext(browser, { viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    await page.goto(`${issuer}/signin?client_id=demo&audience=trading-api&scope=account:read&return_to=/demo/`);
    await signInPageReady(page);
    const error = page.getByRole("alert");
    await error.waitFor({ state: "visible" });
    await page.getByRole("button", { name: "Connect wallet and sign in" }).click();
    await page.waitForTimeout(600);
    const text = await error.textContent();
    if (!/No Ethereum wallet was found/.test(text)) fail(`error text: ${text}`);
    const focused = await page.evaluate(() => document.activeElement?.id);
    if (focused !== "error") fail(`focus is on ${focused}, not on the error`);
    if ((await sessionOf(page)) !== null) fail("a token was stored");
    await page.screenshot({ path: join(artifacts, "signin-no-wallet-phone.png"), fullPage: true });
    await context.close();
    return { error: text };
  },

  // The wallet is on a chain the client does not accept and cannot switch.
  async wrong_chain(browser, wallet) {
    const { context, calls } = await newContext(browser, { wallet, chainId: 5 });
    const page = await context.newPage();
    await page.goto(`${issuer}/signin?client_id=demo&audience=trading-api&scope=account:read`);
    await signInPageReady(page);
    await page.getByRole("button", { name: "Connect wallet and sign in" }).click();
    const error = page.getByRole("alert");
    await error.waitFor({ state: "visible" });
    const text = await error.textContent();
    if (!/chain 5/.test(text) || !/Switch the network/.test(text)) fail(`error text: ${text}`);
    if (calls.includes("personal_sign")) fail("asked to sign on the wrong chain");
    if (!calls.includes("wallet_switchEthereumChain")) fail("no attempt to switch chains");
    await context.close();
    return { error: text };
  },
};

async function main() {
  if (!scenarios[scenario]) fail(`unknown scenario ${scenario}`);
  const wallet = new Wallet(privateKey);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // playwright-core starts Chromium with a fresh temporary profile (--user-data-dir) itself.
    args: CHROMIUM_FLAGS,
    headless: true,
  });
  try {
    const facts = await scenarios[scenario](browser, wallet);
    process.stdout.write(JSON.stringify({ scenario, ok: true, ...facts }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ scenario, ok: false, error: String(err?.stack ?? err) }) + "\n");
  process.exit(1);
});
