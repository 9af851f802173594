#!/usr/bin/env node
// Signs a SIWE (EIP-4361) message the way a JavaScript dApp does: the npm `siwe` package
// builds the text (SiweMessage.prepareMessage()) and an ethers v6 Wallet signs it (EIP-191
// personal_sign). Used by the Python interop tests as an independent client.
//
// stdin:  {"privateKey", "domain", "uri", "nonce", "chainId",
//          "statement"?, "issuedAt"?, "expirationTime"?, "notBefore"?, "requestId"?,
//          "resources"?, "version"?, "scheme"?}
// stdout: {"message", "signature", "address"}
// Exit code 2 with {"error"} on stderr for bad input.
import { SiweMessage } from "siwe";
import { Wallet } from "ethers";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  let input;
  try {
    input = JSON.parse(await readStdin());
  } catch (err) {
    throw Object.assign(new Error(`stdin is not JSON: ${err.message}`), { exitCode: 2 });
  }
  for (const field of ["privateKey", "domain", "uri", "nonce", "chainId"]) {
    if (input[field] === undefined || input[field] === null) {
      throw Object.assign(new Error(`missing field ${field}`), { exitCode: 2 });
    }
  }
  const wallet = new Wallet(input.privateKey);
  const fields = {
    domain: input.domain,
    address: wallet.address, // EIP-55 checksummed, as EIP-4361 requires
    uri: input.uri,
    version: input.version ?? "1",
    chainId: Number(input.chainId),
    nonce: input.nonce,
    issuedAt: input.issuedAt ?? new Date().toISOString(),
  };
  for (const opt of ["statement", "expirationTime", "notBefore", "requestId", "resources", "scheme"]) {
    if (input[opt] !== undefined && input[opt] !== null) fields[opt] = input[opt];
  }
  const message = new SiweMessage(fields).prepareMessage();
  const signature = await wallet.signMessage(message);
  process.stdout.write(JSON.stringify({ message, signature, address: wallet.address }) + "\n");
}

main().catch((err) => {
  process.stderr.write(JSON.stringify({ error: String(err.message ?? err) }) + "\n");
  process.exit(err.exitCode ?? 1);
});
