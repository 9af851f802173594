// Wallets: EIP-1193 providers, found through EIP-6963 announcements (and the legacy
// `window.ethereum`), asked for the account and chain, and for an EIP-191 personal_sign.
import { DidAuthError } from "./errors.js";
import { toChecksumAddress, toHex } from "./keccak.js";

export const CHAIN_NAMES = {
  1: "Ethereum Mainnet",
  10: "OP Mainnet",
  137: "Polygon",
  8453: "Base",
  42161: "Arbitrum One",
  11155111: "Sepolia",
  31337: "Local test chain (31337)",
};

export function chainName(id) {
  return CHAIN_NAMES[id] ?? `chain ${id}`;
}

function walletOf(detail) {
  const info = detail?.info;
  const provider = detail?.provider;
  if (!info || !provider || typeof provider.request !== "function") return null;
  // EIP-6963: the icon is a data URI (RFC 2397); anything else (a javascript: or remote
  // URL) is dropped rather than put in an <img>.
  const icon = typeof info.icon === "string" && /^data:image\//.test(info.icon) ? info.icon : "";
  return {
    id: String(info.uuid ?? info.rdns ?? info.name),
    name: String(info.name ?? "Wallet").slice(0, 60),
    icon,
    rdns: String(info.rdns ?? ""),
    provider,
  };
}

/**
 * EIP-6963 provider discovery, as long as the page lives: listens for
 * `eip6963:announceProvider` and dispatches `eip6963:requestProvider` (wallets announce
 * again in answer, and a wallet injected later announces itself). `onWallet` is called once
 * per wallet ({id, name, icon, rdns, provider}, `id` being the EIP-6963 uuid). Returns a
 * function that stops listening.
 */
export function watchWallets(onWallet, { target = globalThis } = {}) {
  const seen = new Set();
  const onAnnounce = (event) => {
    const wallet = walletOf(event?.detail);
    if (!wallet || seen.has(wallet.id)) return;
    seen.add(wallet.id);
    onWallet(wallet);
  };
  target.addEventListener?.("eip6963:announceProvider", onAnnounce);
  target.dispatchEvent?.(new Event("eip6963:requestProvider"));
  return () => target.removeEventListener?.("eip6963:announceProvider", onAnnounce);
}

/**
 * Wallets in the page: EIP-6963 announcements (each with name and icon) received within
 * `timeoutMs`, and the legacy `window.ethereum` when no announced wallet is that same
 * object. Resolves to [{id, name, icon, rdns, provider}].
 */
export function discoverWallets({ timeoutMs = 400, target = globalThis } = {}) {
  return new Promise((resolve) => {
    const wallets = [];
    const stop = watchWallets((w) => wallets.push(w), { target });
    setTimeout(() => {
      stop();
      const injected = target.ethereum;
      if (injected && typeof injected.request === "function" &&
          !wallets.some((w) => w.provider === injected)) {
        wallets.push({ id: "injected", name: "Browser wallet", icon: "", rdns: "", provider: injected });
      }
      resolve(wallets);
    }, timeoutMs);
  });
}

/** Map an EIP-1193 provider error to a DidAuthError with words for the user. */
export function walletError(err) {
  if (err instanceof DidAuthError) return err;
  const code = err?.code ?? err?.error?.code;
  if (code === 4001) {
    return new DidAuthError(
      "user_rejected",
      "You declined the request in your wallet. Nothing was signed and you are not signed in.",
    );
  }
  if (code === -32002) {
    return new DidAuthError(
      "wallet_busy",
      "Your wallet already has a request open. Open your wallet, finish or close it, then try again.",
    );
  }
  if (code === 4100) {
    return new DidAuthError("user_rejected", "Your wallet did not allow this site to use your account.");
  }
  if (code === 4900 || code === 4901) {
    return new DidAuthError("wrong_chain", "Your wallet is not connected to a network. Connect it and try again.");
  }
  return new DidAuthError("wallet", `Your wallet reported an error: ${String(err?.message ?? err).slice(0, 200)}`);
}

async function walletCall(provider, method, params) {
  try {
    return await provider.request(params === undefined ? { method } : { method, params });
  } catch (err) {
    throw walletError(err);
  }
}

/**
 * Ask for the account and check the chain. With `chainIds`, a wallet on another chain is
 * asked to switch (EIP-3326); if it cannot, a `wrong_chain` error says what to do.
 */
export async function connectWallet(provider, { chainIds = null } = {}) {
  if (!provider || typeof provider.request !== "function") {
    throw new DidAuthError(
      "wallet_missing",
      "No Ethereum wallet was found. Install a wallet browser extension, or open this page in your wallet app's browser.",
    );
  }
  const accounts = await walletCall(provider, "eth_requestAccounts");
  if (!Array.isArray(accounts) || accounts.length === 0) {
    throw new DidAuthError("no_account", "Your wallet did not share an account. Unlock it and try again.");
  }
  const address = toChecksumAddress(accounts[0]);
  let chainId = parseInt(await walletCall(provider, "eth_chainId"), 16);
  if (chainIds && chainIds.length && !chainIds.includes(chainId)) {
    const wanted = chainIds[0];
    try {
      await provider.request({
        method: "wallet_switchEthereumChain",
        params: [{ chainId: "0x" + wanted.toString(16) }],
      });
      chainId = parseInt(await walletCall(provider, "eth_chainId"), 16);
    } catch {
      // fall through to the explanation below
    }
    if (!chainIds.includes(chainId)) {
      const names = chainIds.map(chainName).join(" or ");
      throw new DidAuthError(
        "wrong_chain",
        `Your wallet is on ${chainName(chainId)}, but this sign-in needs ${names}. Switch the network in your wallet, then try again.`,
        { chainId, chainIds },
      );
    }
  }
  return { address, chainId };
}

/** EIP-191 personal_sign of the UTF-8 text, as wallets expect it: [0x-hex data, address]. */
export async function personalSign(provider, address, text) {
  const data = "0x" + toHex(new TextEncoder().encode(text));
  const signature = await walletCall(provider, "personal_sign", [data, address]);
  if (typeof signature !== "string" || !/^0x[0-9a-fA-F]+$/.test(signature)) {
    throw new DidAuthError("wallet", "Your wallet returned something that is not a signature.");
  }
  return signature;
}
