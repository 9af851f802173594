// Live servers for clients/js/test/live.test.mjs: a did-auth server on embedded defaults, the
// example trading API in front of it, and a second did-auth server demanding DPoP nonces
// (dpop_nonce = true). tests/edge/web/test_js_package.py starts them once and passes their URLs
// in DID_AUTH_TEST_ISSUER, DID_AUTH_TEST_API and DID_AUTH_TEST_NONCE_ISSUER; without those,
// `node --test clients/js/test/` starts them here (from the repository's .venv).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitHealthy(url, child, output) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url} exited:\n${output.join("")}`);
    try {
      if ((await fetch(url + "/healthz")).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not start:\n${output.join("")}`);
}

async function start(args, env = {}) {
  const port = await freePort();
  const python = process.env.PYTHON ?? join(ROOT, ".venv", "bin", "python");
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DID_AUTH_")));
  const child = spawn(python, [...args(port)], { cwd: ROOT, env: { ...clean, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const output = [];
  child.stdout.on("data", (d) => output.push(String(d)));
  child.stderr.on("data", (d) => output.push(String(d)));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, child, output);
  return { url, stop: () => child.kill("SIGTERM") };
}

/** {issuer, api, nonceIssuer, stop()} from the environment, or started here. */
export async function liveServers() {
  const { DID_AUTH_TEST_ISSUER: issuer, DID_AUTH_TEST_API: api, DID_AUTH_TEST_NONCE_ISSUER: nonceIssuer } = process.env;
  if (issuer && api && nonceIssuer) return { issuer, api, nonceIssuer, stop() {} };
  const limits = { DID_AUTH_RATE_LIMITS__VERIFY_PER_IP: "600/m", DID_AUTH_RATE_LIMITS__VERIFY_PER_SUBJECT: "600/m" };
  const plain = await start((port) => ["-m", "did_auth", "serve", "--port", String(port)], limits);
  const nonce = await start((port) => ["-m", "did_auth", "serve", "--port", String(port)],
    { ...limits, DID_AUTH_DPOP_NONCE: "true" });
  const trading = await start((port) => [
    "examples/trading_api.py", "--issuer", plain.url, "--audience", "trading-api", "--port", String(port),
  ]);
  return {
    issuer: plain.url,
    api: trading.url,
    nonceIssuer: nonce.url,
    stop() {
      trading.stop();
      nonce.stop();
      plain.stop();
    },
  };
}
