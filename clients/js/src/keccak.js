// Keccak-256 and EIP-55 checksum addresses (EIP-4361 requires the checksummed address in
// the message). No dependency: wallets often answer with a lower-case address.
import { DidAuthError } from "./errors.js";

// Keccak-f[1600] as in FIPS 202 §3 (constants derived, not tabled), with the original
// Keccak padding (0x01 ... 0x80) that Ethereum uses. Only used on 40-byte inputs, so
// BigInt lanes are fast enough and keep the code short.

const MASK64 = (1n << 64n) - 1n;

function rcBit(t) {
  // FIPS 202 Algorithm 5: an 8-bit LFSR with feedback polynomial x^8 + x^6 + x^5 + x^4 + 1.
  let r = 1;
  for (let i = 0; i < t % 255; i++) {
    r <<= 1;
    if (r & 0x100) r ^= 0x171;
  }
  return r & 1;
}

const ROUND_CONSTANTS = Array.from({ length: 24 }, (_, round) => {
  let rc = 0n;
  for (let j = 0; j <= 6; j++) {
    if (rcBit(j + 7 * round)) rc |= 1n << BigInt(2 ** j - 1);
  }
  return rc;
});

const RHO_OFFSETS = (() => {
  // FIPS 202 Algorithm 2: offsets (t+1)(t+2)/2 along the walk (x, y) -> (y, 2x + 3y).
  const offsets = new Array(25).fill(0);
  let x = 1;
  let y = 0;
  for (let t = 0; t < 24; t++) {
    offsets[x + 5 * y] = (((t + 1) * (t + 2)) / 2) % 64;
    [x, y] = [y, (2 * x + 3 * y) % 5];
  }
  return offsets;
})();

function rotl64(v, n) {
  if (n === 0) return v;
  const s = BigInt(n);
  return ((v << s) | (v >> (64n - s))) & MASK64;
}

function keccakF(a) {
  for (let round = 0; round < 24; round++) {
    // theta
    const c = [0, 1, 2, 3, 4].map((x) => a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20]);
    for (let x = 0; x < 5; x++) {
      const d = c[(x + 4) % 5] ^ rotl64(c[(x + 1) % 5], 1);
      for (let y = 0; y < 5; y++) a[x + 5 * y] ^= d;
    }
    // rho and pi: B[y, 2x + 3y] = rot(A[x, y])
    const b = new Array(25);
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) {
        b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl64(a[x + 5 * y], RHO_OFFSETS[x + 5 * y]);
      }
    }
    // chi
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 5; x++) {
        a[x + 5 * y] = b[x + 5 * y] ^ (~b[((x + 1) % 5) + 5 * y] & MASK64 & b[((x + 2) % 5) + 5 * y]);
      }
    }
    // iota
    a[0] ^= ROUND_CONSTANTS[round];
  }
}

export function keccak256(bytes) {
  const rate = 136;
  const padded = new Uint8Array(Math.ceil((bytes.length + 1) / rate) * rate);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const state = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) {
      let lane = 0n;
      for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[off + 8 * i + k]);
      state[i] ^= lane;
    }
    keccakF(state);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 4; i++) {
    let lane = state[i];
    for (let k = 0; k < 8; k++) {
      out[8 * i + k] = Number(lane & 0xffn);
      lane >>= 8n;
    }
  }
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** EIP-55 mixed-case checksum address (EIP-4361 requires it in the message). */
export function toChecksumAddress(address) {
  if (typeof address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new DidAuthError("no_account", "The wallet returned an invalid account address.");
  }
  const lower = address.slice(2).toLowerCase();
  const hash = toHex(keccak256(new TextEncoder().encode(lower)));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  return out;
}
