// JSON-lines plumbing shared by the Node relying-party scripts (see rp_harness.py):
// read one JSON object per stdin line, write one per stdout line, report errors with
// everything a test needs to say why a library refused something, and never run longer
// than the deadline.
import { createInterface } from "node:readline";

const DEADLINE_MS = 60_000;

export function startDeadline() {
  setTimeout(() => {
    process.stderr.write(`deadline of ${DEADLINE_MS} ms exceeded\n`);
    process.exit(3);
  }, DEADLINE_MS).unref();
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();

export async function readMessage() {
  for (;;) {
    const { value, done } = await lines.next();
    if (done) throw new Error("stdin closed");
    if (value.trim()) return JSON.parse(value);
  }
}

export function send(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// What a library error says, without the Response/Request objects it may carry.
export function describeError(err) {
  if (err === null || typeof err !== "object") return { message: String(err) };
  const out = { name: err.name, message: err.message };
  for (const k of ["code", "error", "error_description", "status"]) {
    if (err[k] !== undefined && typeof err[k] !== "object") out[k] = err[k];
  }
  const cause = err.cause;
  if (cause && typeof cause === "object") {
    if (cause instanceof Error) out.cause = describeError(cause);
    else if (Array.isArray(cause)) {
      // WWWAuthenticateChallengeError: [{scheme, parameters: {error, ...}}]
      try {
        out.challenges = JSON.parse(JSON.stringify(cause));
      } catch {
        out.challenges = String(cause);
      }
    } else {
      out.cause = {};
      for (const [k, v] of Object.entries(cause)) {
        if (v === null || ["string", "number", "boolean"].includes(typeof v)) out.cause[k] = v;
        else if (k === "body" || k === "claims" || k === "header" || k === "parameters") {
          try {
            out.cause[k] = JSON.parse(JSON.stringify(v instanceof URLSearchParams ? Object.fromEntries(v) : v));
          } catch {
            out.cause[k] = String(v);
          }
        }
      }
    }
  }
  return out;
}

// Runs `fn`; the expected outcome is a refusal: returns {refused: true, ...error} or
// {refused: false, value} so the Python side asserts on it.
export async function refusal(fn) {
  try {
    const value = await fn();
    return { refused: false, value: value ?? null };
  } catch (err) {
    return { refused: true, ...describeError(err) };
  }
}

export async function main(body) {
  startDeadline();
  try {
    await body();
    process.exit(0);
  } catch (err) {
    send({ error: describeError(err) });
    process.exit(1);
  }
}

export function decodeJwt(token) {
  const [h, p] = token.split(".");
  const dec = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  return { header: dec(h), claims: dec(p) };
}
