// DPoP (RFC 9449): proof-of-possession of a key the browser cannot give away. The private key
// is a WebCrypto ECDSA P-256 key generated with `extractable: false`: scripts can sign with
// it but never read it (exportKey throws), so a stolen access or refresh token is useless
// without this page's key. A CryptoKeyPair is structured-cloneable, so an application may keep
// it in IndexedDB and rebuild the DpopKey with `DpopKey.fromKeyPair` after a reload.

const textEncoder = new TextEncoder();

/** base64url without padding (RFC 4648 §5, RFC 7515 §2). */
export function b64url(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function b64urlJson(value) {
  return b64url(textEncoder.encode(JSON.stringify(value)));
}

function subtleOf(crypto) {
  const subtle = crypto?.subtle;
  if (!subtle) {
    throw new Error("DPoP needs WebCrypto (crypto.subtle): a secure context (https or localhost) or Node.js 20+");
  }
  return subtle;
}

/** RFC 7638 JWK thumbprint (SHA-256) of an EC public key: the `jkt` the server binds to. */
export async function jwkThumbprint(jwk, { crypto = globalThis.crypto } = {}) {
  // RFC 7638 §3.2: the required members only, in lexicographic order, no white space.
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return b64url(new Uint8Array(await subtleOf(crypto).digest("SHA-256", textEncoder.encode(canonical))));
}

/** RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the ASCII access token. */
export async function accessTokenHash(accessToken, { crypto = globalThis.crypto } = {}) {
  return b64url(new Uint8Array(await subtleOf(crypto).digest("SHA-256", textEncoder.encode(accessToken))));
}

/** RFC 9449 §4.2 `htu`: "The HTTP target URI ... without query and fragment parts." */
export function htuOf(url) {
  const u = new URL(String(url), globalThis.location?.href);
  return u.origin + u.pathname;
}

function originOf(url) {
  return new URL(String(url), globalThis.location?.href).origin;
}

export class DpopKey {
  /** Use `DpopKey.generate()` or `DpopKey.fromKeyPair()`. */
  constructor(keyPair, publicJwk, thumbprint, { crypto = globalThis.crypto, now = () => Date.now() } = {}) {
    this.keyPair = keyPair;
    this.publicJwk = publicJwk;
    this.thumbprint = thumbprint;
    this._crypto = crypto;
    this._now = now;
    this._nonces = new Map();
  }

  /** A fresh non-extractable ECDSA P-256 key pair (ES256 proofs). */
  static async generate({ crypto = globalThis.crypto, now = undefined } = {}) {
    const keyPair = await subtleOf(crypto).generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    return DpopKey.fromKeyPair(keyPair, { crypto, now });
  }

  /** Rebuild a DpopKey from a stored CryptoKeyPair; its private key must be non-extractable. */
  static async fromKeyPair(keyPair, { crypto = globalThis.crypto, now = undefined } = {}) {
    const { privateKey, publicKey } = keyPair ?? {};
    if (!privateKey || !publicKey || privateKey.type !== "private") {
      throw new Error("DpopKey: a CryptoKeyPair is required");
    }
    if (privateKey.extractable) {
      throw new Error("DpopKey: the private key must be non-extractable (generateKey with extractable: false)");
    }
    if (privateKey.algorithm?.name !== "ECDSA" || privateKey.algorithm?.namedCurve !== "P-256") {
      throw new Error("DpopKey: an ECDSA P-256 key is required (ES256)");
    }
    // The public half of a generated pair is always exportable (WebCrypto); only x and y go
    // into the proof's `jwk` (RFC 9449 §4.2: no private key in the header).
    const jwk = await subtleOf(crypto).exportKey("jwk", publicKey);
    const publicJwk = { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
    const thumbprint = await jwkThumbprint(publicJwk, { crypto });
    return new DpopKey(keyPair, publicJwk, thumbprint, { crypto, ...(now ? { now } : {}) });
  }

  /** The last `DPoP-Nonce` the server at `url`'s origin provided (RFC 9449 §8, §9). */
  nonceFor(url) {
    return this._nonces.get(originOf(url));
  }

  /** Keep the `DPoP-Nonce` of a response for the next proof to that origin. */
  rememberNonce(url, response) {
    const nonce = response?.headers?.get?.("dpop-nonce");
    if (nonce) this._nonces.set(originOf(url), nonce);
    return nonce ?? undefined;
  }

  /**
   * A DPoP proof JWT for one request: header {typ: "dpop+jwt", alg: "ES256", jwk}, claims
   * {jti, htm, htu, iat} plus `ath` with an access token (requests to resources, §4.2) and the
   * server's `nonce` when it gave one (`nonce` defaults to the one remembered for the origin).
   */
  async proof({ method, url, accessToken = undefined, nonce = undefined }) {
    const header = { typ: "dpop+jwt", alg: "ES256", jwk: this.publicJwk };
    const claims = {
      // §4.2 jti: "Unique identifier for the DPoP proof JWT ... at least 96 bits".
      jti: b64url(this._crypto.getRandomValues(new Uint8Array(16))),
      htm: String(method ?? "GET").toUpperCase(),
      htu: htuOf(url),
      iat: Math.floor(this._now() / 1000),
    };
    const useNonce = nonce ?? this.nonceFor(url);
    if (useNonce) claims.nonce = useNonce;
    if (accessToken) claims.ath = await accessTokenHash(accessToken, { crypto: this._crypto });
    const signingInput = `${b64urlJson(header)}.${b64urlJson(claims)}`;
    // WebCrypto's ECDSA signature is already r || s (IEEE P1363), the JWS form (RFC 7518 §3.4).
    const signature = await subtleOf(this._crypto).sign(
      { name: "ECDSA", hash: "SHA-256" },
      this.keyPair.privateKey,
      textEncoder.encode(signingInput),
    );
    return `${signingInput}.${b64url(new Uint8Array(signature))}`;
  }
}

/** A new DPoP key (non-extractable ECDSA P-256). */
export function createDpopKey(options = {}) {
  return DpopKey.generate(options);
}
