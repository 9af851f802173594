#!/usr/bin/env node
// EIP-712 typed data the way a JavaScript dApp handles it: ethers v6 computes the digest
// (TypedDataEncoder.hash) and a Wallet signs it (signTypedData, what eth_signTypedData_v4
// wallets produce). Used by the Python tests as an independent implementation.
//
// stdin:  [{"privateKey", "domain", "types" (without EIP712Domain), "message"}, ...]
//         (uint256 values may be given as decimal strings)
// stdout: [{"digest", "signature"}, ...]
import { TypedDataEncoder, Wallet } from "ethers";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const cases = JSON.parse(await readStdin());
const out = [];
for (const c of cases) {
  const digest = TypedDataEncoder.hash(c.domain, c.types, c.message);
  const signature = await new Wallet(c.privateKey).signTypedData(c.domain, c.types, c.message);
  out.push({ digest, signature });
}
process.stdout.write(JSON.stringify(out) + "\n");
