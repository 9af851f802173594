#!/usr/bin/env node
// Passkeys on the hosted page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), with the DevTools WebAuthn virtual authenticator (CTAP2, internal
// transport, resident keys, user verification) and an injected EIP-1193 wallet whose
// requests an ethers v6 Wallet answers in Node (personal_sign, eth_signTypedData_v4).
//
//   node tests/edge/web/passkeys_e2e.mjs SCENARIO   with env E2E = JSON {issuer, page, privateKey, artifacts, withdrawal}
//
// `issuer` is the server's configured issuer (audience of the account sign-in); `page` is
// the origin the page is opened on (http://localhost:PORT: WebAuthn refuses IP addresses
// as RP ids). Scenarios:
//   register  sign in for the account, add a passkey, list it;
//   withdraw  the same, then a withdrawal: plain words, the wallet's EIP-712 signature, the
//             passkey's assertion, and the withdrawal token;
//   demo      the withdrawal from the demo dApp, which sends it to the trading API (`api`).
// Prints one JSON line {"scenario", "ok": true, ...facts} and exits 0, or the failure and exits 1.
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Wallet, getBytes } from "ethers";

const scenario = process.argv[2];
const cfg = JSON.parse(process.env.E2E ?? "{}");
const { issuer, page: pageOrigin, privateKey, artifacts, withdrawal } = cfg;
mkdirSync(artifacts, { recursive: true });

function injectWallet(info) {
  const provider = {
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
    window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
}

// RFC 6238 TOTP (HMAC-SHA1, 30 s, 6 digits) of a base32 secret, as an authenticator app.
function totp(secret, at = Date.now() / 1000) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

async function walletContext(browser, wallet) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 1400 } });
  const typed = [];
  await context.exposeFunction("__e2eWallet", async (method, params) => {
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return { result: [wallet.address.toLowerCase()] };
      case "eth_chainId":
        return { result: "0x7a69" };
      case "personal_sign":
        return { result: await wallet.signMessage(getBytes(params[0])) };
      case "eth_signTypedData_v4": {
        const [address, json] = params;
        if (String(address).toLowerCase() !== wallet.address.toLowerCase()) {
          return { error: { code: 4100, message: "unknown account" } };
        }
        const data = JSON.parse(json);
        const { EIP712Domain, ...types } = data.types;
        typed.push(data);
        return { result: await wallet.signTypedData(data.domain, types, data.message) };
      }
      default:
        return { error: { code: 4200, message: `unsupported method ${method}` } };
    }
  });
  await context.addInitScript(injectWallet, {
    uuid: "0b6c1f7e-3d0a-4d52-8f7e-1c2a3b4c5d6e", name: "Test Wallet (ethers)", icon: "", rdns: "org.did-auth.test",
  });
  return { context, typed };
}

async function virtualAuthenticator(context, page, transport = "internal") {
  // DevTools WebAuthn domain: a platform authenticator that verifies the user itself.
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport,
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    async credentials() {
      return (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
    },
  };
}

async function accountPage(browser, wallet, problems, { demo = false } = {}) {
  const { context, typed } = await walletContext(browser, wallet);
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) problems.push(`console: ${msg.text()}`);
  });
  const authenticator = await virtualAuthenticator(context, page);
  if (demo) {
    await page.goto(`${pageOrigin}/demo/?api=${encodeURIComponent(cfg.api)}`);
    await page.getByRole("button", { name: "Sign in to manage security and withdraw" }).click();
    await page.waitForSelector("#security-panel[data-ready]", { timeout: 15_000 });
  } else {
    await page.goto(`${pageOrigin}/signin?client_id=demo&audience=${encodeURIComponent(issuer)}`);
    await page.waitForSelector("html[data-wallets-ready]", { timeout: 10_000 });
    await page.getByRole("button", { name: "Connect wallet and sign in" }).click();
    await page.waitForSelector("#account[data-ready]", { timeout: 15_000 });
  }
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await page.waitForSelector('#passkey-list[data-count="1"]', { timeout: 15_000 });
  const status = await page.textContent("#account-status");
  if (!/Passkey added/.test(status)) throw new Error(`passkey not added: ${status}`);
  return { page, typed, authenticator };
}

const scenarios = {
  // Then a second authenticator (a security key on the same browser): adding it needs the
  // first passkey's assertion (the account's current factor), then it is listed too.
  async register(browser, wallet, problems) {
    const { page, authenticator } = await accountPage(browser, wallet, problems);
    await page.screenshot({ path: join(artifacts, "passkey-registered.png"), fullPage: true });
    const creds = await authenticator.credentials();
    const firstCount = creds[0].signCount;
    const second = await virtualAuthenticator(page.context(), page, "usb");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await page.waitForSelector('#passkey-list[data-count="2"]', { timeout: 15_000 }).catch(async (err) => {
      throw new Error(`second passkey not added: ${await page.textContent("#account-status")} (${err.message})`);
    });
    const listed = await page.$$eval("#passkey-list li", (items) => items.map((li) => li.textContent));
    // An authenticator app too: its first TOTP needs a passkey of the account.
    const uses = async () =>
      [...(await authenticator.credentials()), ...(await second.credentials())].reduce((n, c) => n + c.signCount, 0);
    const beforeTotp = await uses();
    await page.getByRole("button", { name: "Set up an authenticator app" }).click();
    await page.waitForSelector("#otp-secret:not([hidden])", { timeout: 15_000 }).catch(async (err) => {
      throw new Error(`no TOTP secret: ${await page.textContent("#account-status")} (${err.message})`);
    });
    const secret = await page.getAttribute("#otp-secret", "data-secret");
    await page.fill("#otp-confirm-code", totp(secret));
    await page.getByRole("button", { name: "Confirm code" }).click();
    await page.waitForFunction(() => /Authenticator app set up/.test(document.getElementById("account-status").textContent));
    const totpWithPasskey = (await uses()) > beforeTotp;
    // A step-up scope at sign-in: the page asks for the authenticator app's code and sends
    // it with the signature (the next time step: the confirmation used this one).
    await page.goto(`${pageOrigin}/signin?client_id=demo&scope=${encodeURIComponent("account:read wallet:withdraw")}`);
    await page.waitForSelector("html[data-wallets-ready]", { timeout: 10_000 });
    const codeShown = await page.isVisible("#otp-code");
    await page.evaluate(() => sessionStorage.removeItem("did-auth:session")); // the earlier sign-in's
    await page.fill("#otp-code", totp(secret, Date.now() / 1000 + 30));
    await page.getByRole("button", { name: "Connect wallet and sign in" }).click();
    await page.waitForFunction(() => sessionStorage.getItem("did-auth:session") !== null, null, { timeout: 15_000 })
      .catch(async (err) => { throw new Error(`step-up sign-in failed: ${await page.textContent("#error")} (${err.message})`); });
    const stepUp = JSON.parse(await page.evaluate(() => sessionStorage.getItem("did-auth:session")));
    await page.screenshot({ path: join(artifacts, "signin-step-up.png"), fullPage: true });
    return {
      codeShown,
      stepUpScope: stepUp.tokens.scope,
      stepUpAmr: JSON.parse(Buffer.from(stepUp.tokens.access_token.split(".")[1], "base64url")).amr,
      totpWithPasskey,
      credentials: creds.length,
      resident: creds.map((c) => c.isResidentCredential),
      confirmedWithFirst: (await authenticator.credentials())[0].signCount > firstCount,
      secondCredentials: (await second.credentials()).length,
      listed,
    };
  },

  async withdraw(browser, wallet, problems, options = {}) {
    const { page, typed, authenticator } = await accountPage(browser, wallet, problems, options);
    const before = (await authenticator.credentials())[0].signCount;
    await page.fill("#wd-asset", withdrawal.asset);
    await page.fill("#wd-amount", withdrawal.amount);
    await page.fill("#wd-destination", withdrawal.destination);
    await page.fill("#wd-network", withdrawal.network);
    await page.fill("#wd-audience", withdrawal.audience);
    await page.getByRole("button", { name: "Review withdrawal" }).click();
    await page.waitForSelector("#withdrawal-words:not([hidden])");
    const words = await page.textContent("#withdrawal-words");
    if (typed.length) throw new Error("the wallet was asked to sign before the withdrawal was shown");
    await page.screenshot({ path: join(artifacts, "withdrawal-review.png"), fullPage: true });
    await page.getByRole("button", { name: "Sign with wallet and confirm with passkey" }).click();
    await page.waitForSelector("#withdrawal-token[data-token]", { timeout: 20_000 }).catch(async (err) => {
      throw new Error(`no withdrawal token: ${await page.textContent("#account-status")} (${err.message})`);
    });
    await page.screenshot({ path: join(artifacts, "withdrawal-approved.png"), fullPage: true });
    const token = await page.getAttribute("#withdrawal-token", "data-token");
    const after = (await authenticator.credentials())[0].signCount;
    if (options.demo) {
      await page.waitForSelector("#withdrawal-result:not([hidden])", { timeout: 10_000 });
      const api = await page.textContent("#withdrawal-result");
      return { words, typed, token, signCount: [before, after], api };
    }
    return { words, typed, token, signCount: [before, after] };
  },

  // The demo dApp: its own fresh sign-in for did-auth, the same panel, and the approved
  // withdrawal sent to the trading API by the page.
  async demo(browser, wallet, problems) {
    return scenarios.withdraw(browser, wallet, problems, { demo: true });
  },
};

const browser = await chromium.launch({
  executablePath: cfg.chromium ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const wallet = new Wallet(privateKey);
  const problems = [];
  const facts = await scenarios[scenario](browser, wallet, problems);
  if (problems.length) throw new Error(problems.join("\n"));
  console.log(JSON.stringify({ scenario, ok: true, address: wallet.address, ...facts }));
} catch (err) {
  console.log(JSON.stringify({ scenario, ok: false, error: String(err?.stack ?? err) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
