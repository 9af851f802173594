// OpenID Connect / OAuth 2.0 helpers for a browser app that is a public client: PKCE (RFC 7636,
// S256 only), random state and nonce, and an unverified look at a JWT's claims for display
// (servers verify tokens; a public client checks what binds the ID token to its request).
import { b64url } from "./dpop.js";

/** The claims of a JWT (not verified: for display; servers verify). */
export function decodeJwt(token) {
  const part = String(token).split(".")[1];
  if (!part) throw new Error("not a JWT");
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** `n` random bytes, base64url (for state, nonce and PKCE verifiers). */
export function randomString(n = 32, { crypto = globalThis.crypto } = {}) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

/**
 * RFC 7636 PKCE pair: a 43-character verifier (32 random bytes, §4.1 "high-entropy") and its
 * S256 challenge, BASE64URL(SHA256(ASCII(code_verifier))) (§4.2).
 */
export async function createPkce({ crypto = globalThis.crypto } = {}) {
  const verifier = randomString(32, { crypto });
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: b64url(new Uint8Array(digest)), method: "S256" };
}
