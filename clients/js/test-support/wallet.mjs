// An EIP-1193 provider backed by an ethers v6 Wallet (the test's own key), answering the
// calls a dApp makes to sign in: accounts (lower-case, as many wallets answer), chain id,
// personal_sign. `calls` and `signed` record what was asked.
import { getBytes, toUtf8String } from "ethers";

export function walletProvider(wallet, { chainId = 31337, reject = false } = {}) {
  return {
    calls: [],
    signed: [],
    async request({ method, params = [] }) {
      this.calls.push(method);
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return [wallet.address.toLowerCase()];
        case "eth_chainId":
          return "0x" + chainId.toString(16);
        case "personal_sign": {
          if (reject) throw Object.assign(new Error("User rejected the request."), { code: 4001 });
          const [data, address] = params;
          if (String(address).toLowerCase() !== wallet.address.toLowerCase()) {
            throw Object.assign(new Error("unknown account"), { code: 4100 });
          }
          this.signed.push(toUtf8String(getBytes(data)));
          return wallet.signMessage(getBytes(data));
        }
        default:
          throw Object.assign(new Error(`unsupported method ${method}`), { code: 4200 });
      }
    },
  };
}

/** A fetch that records every call (url, method, headers) before passing it on. */
export function recordingFetch(log) {
  return async (url, init = {}) => {
    log.push({ url: String(url), method: init.method ?? "GET", headers: new Headers(init.headers) });
    return fetch(url, init);
  };
}
