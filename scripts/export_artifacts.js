#!/usr/bin/env node
// Writes the compiled contracts the Python side loads without Node:
//   did_auth/adapters/chain/artifacts/<Name>.json   our contracts (fresh `hardhat compile`) and the
//                                          canonical ERC-1056 registry (ethr-did-registry's
//                                          own compiled artifact, never recompiled)
//   tests/fixtures/artifacts/<Name>.json   Safe v1.4.1 (@safe-global/safe-contracts' build
//                                          artifacts) and our test-only contracts
//                                          (COMPILED_FOR_TESTS), only needed by tests
// Each file is {contractName, abi, bytecode, deployedBytecode, source} with sorted keys,
// 2-space indent and a trailing newline, so the output is byte-for-byte deterministic.
//
// Usage: node scripts/export_artifacts.js [--out DIR] [--test-out DIR] [--no-compile]
// (tests/contracts/test_artifacts.py runs it into a temp dir and compares.)
"use strict";

const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");

// Ours: [artifact name as Hardhat knows it]
const COMPILED = [
  "RevocationRegistry",
  "UniversalSigValidator",
  "ValidateSigOffchain",
  "TestERC1271Wallet",
  "TestWalletFactory",
];

// Ours, needed by the tests only (written to tests/fixtures/artifacts)
const COMPILED_FOR_TESTS = ["TestHostileWallet"];

// From npm packages: [name, package, path of the artifact inside the package, destination]
const FROM_NPM = [
  [
    "EthereumDIDRegistry",
    "ethr-did-registry",
    "artifacts/contracts/EthereumDIDRegistry.sol/EthereumDIDRegistry.json",
    "package",
  ],
  ["Safe", "@safe-global/safe-contracts", "build/artifacts/contracts/Safe.sol/Safe.json", "tests"],
  [
    "SafeProxyFactory",
    "@safe-global/safe-contracts",
    "build/artifacts/contracts/proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
    "tests",
  ],
  [
    "CompatibilityFallbackHandler",
    "@safe-global/safe-contracts",
    "build/artifacts/contracts/handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json",
    "tests",
  ],
];

function parseArgs(argv) {
  const opts = {
    out: path.join(ROOT, "did_auth", "chain", "artifacts"),
    testOut: path.join(ROOT, "tests", "fixtures", "artifacts"),
    compile: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--out") opts.out = path.resolve(argv[++i]);
    else if (arg === "--test-out") opts.testOut = path.resolve(argv[++i]);
    else if (arg === "--no-compile") opts.compile = false;
    else throw new Error(`unknown argument ${arg}`);
  }
  return opts;
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

function record(name, artifact, source) {
  const links = { ...(artifact.linkReferences || {}), ...(artifact.deployedLinkReferences || {}) };
  if (Object.keys(links).length > 0) throw new Error(`${name} needs library linking; not supported`);
  if (!/^0x[0-9a-f]*$/i.test(artifact.bytecode) || artifact.bytecode.length <= 2) {
    throw new Error(`${name} has no creation bytecode`);
  }
  return {
    contractName: name,
    abi: artifact.abi,
    bytecode: artifact.bytecode,
    deployedBytecode: artifact.deployedBytecode,
    source,
  };
}

function write(dir, rec) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${rec.contractName}.json`);
  fs.writeFileSync(file, JSON.stringify(sortKeys(rec), null, 2) + "\n");
  return file;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  process.chdir(ROOT); // Hardhat finds hardhat.config.js from the working directory
  const hre = require("hardhat");
  if (opts.compile) await hre.run("compile", { quiet: true });

  const written = [];
  for (const name of COMPILED) {
    const artifact = await hre.artifacts.readArtifact(name);
    written.push(write(opts.out, record(name, artifact, artifact.sourceName)));
  }
  for (const name of COMPILED_FOR_TESTS) {
    const artifact = await hre.artifacts.readArtifact(name);
    written.push(write(opts.testOut, record(name, artifact, artifact.sourceName)));
  }
  for (const [name, pkg, rel, dest] of FROM_NPM) {
    const pkgDir = path.join(ROOT, "node_modules", pkg); // top-level devDependencies
    const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
    const artifact = JSON.parse(fs.readFileSync(path.join(pkgDir, rel), "utf8"));
    const rec = record(name, artifact, `npm:${pkg}@${version}/${rel}`);
    written.push(write(dest === "package" ? opts.out : opts.testOut, rec));
  }
  for (const file of written) console.log(path.relative(process.cwd(), file));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
