#!/usr/bin/env node
// The reference JavaScript DID stack, driven by the Python interop tests:
//   - npm `ethr-did-resolver` + `did-resolver` resolve did:ethr documents from an
//     ERC-1056 registry (the same Hardhat node and registry did-auth reads);
//   - npm `did-jwt` signs proofs (ES256K-R / ES256K / EdDSA) and verifies proofs that
//     did-auth's Python signer made;
//   - identifiers (did:ethr, did:pkh, did:key) are derived here independently of Python.
//
// stdin:  {"ops": [op, ...]}; every op is one of
//   {"op": "resolve", "rpcUrl", "chainId", "registry", "did", "blockTag"?}
//       -> {"didDocument", "didDocumentMetadata", "didResolutionMetadata"}
//   {"op": "identifiers", "privateKey" (hex secp256k1), "chainId", "ed25519PrivateKey"?}
//       -> {"address", "ethr", "ethrPublicKey", "pkh", "keySecp256k1", "keyEd25519"?}
//   {"op": "sign", "alg", "privateKey" (hex), "issuer", "payload"} -> {"jwt"}
//   {"op": "verify", "jwt", "audience", "rpcUrl", "chainId", "registry"}
//       -> {"verified": true, "signer"} or {"verified": false, "error"}
// stdout: {"results": [...]} in op order. Exit code 2 with {"error"} on stderr on bad input.
import { Resolver } from "did-resolver";
import { getResolver } from "ethr-did-resolver";
import {
  createJWT,
  verifyJWT,
  ES256KSigner,
  EdDSASigner,
  hexToBytes,
  bytesToMultibase,
} from "did-jwt";
import { computeAddress, SigningKey } from "ethers";
import { ed25519 } from "@noble/curves/ed25519";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const resolvers = new Map();
function resolverFor(op) {
  const key = `${op.rpcUrl}|${op.chainId}|${op.registry}`;
  if (!resolvers.has(key)) {
    const ethr = getResolver({
      networks: [{ chainId: op.chainId, rpcUrl: op.rpcUrl, registry: op.registry }],
    });
    resolvers.set(key, new Resolver(ethr));
  }
  return resolvers.get(key);
}

function hexChain(chainId) {
  return `0x${BigInt(chainId).toString(16)}`;
}

function strip0x(hex) {
  return hex.startsWith("0x") ? hex.slice(2) : hex;
}

async function run(op) {
  switch (op.op) {
    case "resolve": {
      const options = { accept: "application/did+json" };
      if (op.blockTag !== undefined && op.blockTag !== null) options.blockTag = op.blockTag;
      const res = await resolverFor(op).resolve(op.did, options);
      return {
        didDocument: res.didDocument,
        didDocumentMetadata: res.didDocumentMetadata,
        didResolutionMetadata: res.didResolutionMetadata,
      };
    }
    case "identifiers": {
      const key = "0x" + strip0x(op.privateKey);
      const address = computeAddress(key);
      const compressed = SigningKey.computePublicKey(key, true);
      const out = {
        address,
        ethr: `did:ethr:${hexChain(op.chainId)}:${address}`,
        ethrPublicKey: `did:ethr:${hexChain(op.chainId)}:${compressed}`,
        pkh: `did:pkh:eip155:${op.chainId}:${address}`,
        keySecp256k1:
          "did:key:" + bytesToMultibase(hexToBytes(compressed), "base58btc", "secp256k1-pub"),
      };
      if (op.ed25519PrivateKey) {
        const pub = ed25519.getPublicKey(hexToBytes(op.ed25519PrivateKey));
        out.keyEd25519 = "did:key:" + bytesToMultibase(pub, "base58btc", "ed25519-pub");
      }
      return out;
    }
    case "sign": {
      const priv = hexToBytes(op.privateKey);
      let signer;
      if (op.alg === "EdDSA") signer = EdDSASigner(priv);
      else if (op.alg === "ES256K-R") signer = ES256KSigner(priv, true);
      else if (op.alg === "ES256K") signer = ES256KSigner(priv, false);
      else throw Object.assign(new Error(`unsupported alg ${op.alg}`), { exitCode: 2 });
      const jwt = await createJWT(op.payload, { issuer: op.issuer, signer, alg: op.alg }, {
        alg: op.alg,
      });
      return { jwt };
    }
    case "verify": {
      try {
        const res = await verifyJWT(op.jwt, {
          resolver: resolverFor(op),
          audience: op.audience,
          proofPurpose: "authentication",
        });
        return { verified: true, signer: res.signer.id, issuer: res.issuer };
      } catch (err) {
        return { verified: false, error: String(err.message || err) };
      }
    }
    default:
      throw Object.assign(new Error(`unknown op ${op.op}`), { exitCode: 2 });
  }
}

async function main() {
  let input;
  try {
    input = JSON.parse(await readStdin());
  } catch (err) {
    throw Object.assign(new Error(`stdin is not JSON: ${err.message}`), { exitCode: 2 });
  }
  if (!Array.isArray(input.ops)) {
    throw Object.assign(new Error("stdin must be {\"ops\": [...]}"), { exitCode: 2 });
  }
  const results = [];
  for (const op of input.ops) results.push(await run(op));
  process.stdout.write(JSON.stringify({ results }));
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(JSON.stringify({ error: String(err.message || err) }));
    process.exit(err.exitCode || 1);
  },
);
