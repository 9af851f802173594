// Hardhat 2 configuration for did-auth's contracts.
//
// Compiles offline: Hardhat normally downloads solc from the internet, which these machines
// (and CI) cannot reach. The subtask override below hands Hardhat the JavaScript build of the
// compiler shipped by the npm package `solc` (pinned in package.json to SOLC_VERSION) and
// refuses any other version instead of falling back to a download.
//
// evmVersion "cancun": OpenZeppelin 5.x uses MCOPY (SignatureChecker), so anything older
// does not compile. Both chains we run on execute it: Hardhat's node (default hardfork
// osaka) and py-evm through eth-tester (prague).
//
// CONTRACTS_ARTIFACTS_DIR / CONTRACTS_CACHE_DIR redirect Hardhat's outputs (used by the
// test that recompiles and compares with the committed artifacts without touching ./artifacts).
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = "0.8.26";
const EVM_VERSION = "cancun";

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }) => {
  const installed = require("solc/package.json").version;
  if (solcVersion !== SOLC_VERSION || installed !== SOLC_VERSION) {
    throw new Error(
      `did-auth compiles offline with the npm package solc@${SOLC_VERSION} only ` +
        `(asked for ${solcVersion}, node_modules has solc@${installed}); run \`npm ci\``,
    );
  }
  // solc's wrapper reports e.g. "0.8.26+commit.8a97fa7a.Emscripten.clang"; Hardhat's long
  // version is the part before the platform suffix.
  const longVersion = require("solc").version().replace(/\.Emscripten\.clang$/, "");
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: solcVersion,
    longVersion,
  };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: EVM_VERSION,
      // No metadata hash in the bytecode: the committed artifacts stay byte-identical to a
      // fresh compile on any machine, whatever the absolute source paths.
      metadata: { bytecodeHash: "none" },
    },
  },
  paths: {
    sources: path.join(__dirname, "contracts"),
    artifacts: process.env.CONTRACTS_ARTIFACTS_DIR || path.join(__dirname, "artifacts"),
    cache: process.env.CONTRACTS_CACHE_DIR || path.join(__dirname, "cache"),
  },
  networks: {
    hardhat: {
      chainId: 31337,
    },
  },
};
