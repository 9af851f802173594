// @did-auth/client: Sign-In with Ethereum (EIP-4361) against a did-auth server from a dApp.
// Plain ES modules, no dependencies, no build step: import this file from the package, or
// from a did-auth server at /static/client/index.js.
//
//   import { discoverWallets, signIn } from "@did-auth/client";
//   const [wallet] = await discoverWallets();                      // EIP-6963 + window.ethereum
//   const session = await signIn(wallet.provider, {
//     issuer: "https://auth.example", clientId: "my-dapp", audience: "trading-api",
//     scope: "account:read trade:write", dpop: true,              // non-extractable P-256 key
//   });
//   const res = await session.fetch("https://api.example/orders", { method: "POST", body });
//   await session.refresh();                                       // the refresh token rotates
//   await session.revoke();                                        // ends the whole session
//
// Errors are DidAuthError: `code` for the UI, `message` for the user, and the server's own
// `error` / `errorDescription` and HTTP `status` when did-auth refused.
export { DidAuthError } from "./errors.js";
export { keccak256, toChecksumAddress, toHex } from "./keccak.js";
export { buildSiweMessage, isoTime } from "./siwe.js";
export {
  CHAIN_NAMES,
  chainName,
  connectWallet,
  discoverWallets,
  personalSign,
  walletError,
  watchWallets,
} from "./wallet.js";
export { DpopKey, accessTokenHash, createDpopKey, htuOf, jwkThumbprint } from "./dpop.js";
export { deleteDpopKey, loadDpopKey, saveDpopKey } from "./storage.js";
export { createPkce, decodeJwt, randomString } from "./oidc.js";
export { Session, challengeError } from "./session.js";
export { DidAuthClient, signIn } from "./client.js";
export { signInWithPopup } from "./popup.js";
