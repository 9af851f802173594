// A dApp written in TypeScript against the package's declarations: `tsc --noEmit` (run by
// tests/edge/web/test_js_package.py) must accept it, and reject the misuses marked below.
import {
  DidAuthClient,
  DidAuthError,
  DpopKey,
  Session,
  buildSiweMessage,
  decodeJwt,
  deleteDpopKey,
  discoverWallets,
  loadDpopKey,
  saveDpopKey,
  signIn,
  watchWallets,
  type AccessTokenClaims,
  type Eip1193Provider,
  type TokenResponse,
  type Wallet,
} from "@did-auth/client";

export async function dapp(): Promise<void> {
  const wallets: Wallet[] = await discoverWallets({ timeoutMs: 200 });
  const stop: () => void = watchWallets((w) => console.log(w.name, w.rdns));
  stop();
  const provider: Eip1193Provider = wallets[0]?.provider ?? { request: async () => null };

  const session: Session = await signIn(provider, {
    issuer: "https://auth.example",
    clientId: "my-dapp",
    audience: "trading-api",
    scope: "account:read trade:write",
    dpop: true,
    chainIds: [1, 8453],
    statement: "Sign in to My dApp.",
    onStep: (step) => console.log(step === "sign" ? "check your wallet" : step),
    onTokens: (s) => sessionStorage.setItem("tokens", JSON.stringify(s.toJSON())),
  });
  const kind: "Bearer" | "DPoP" = session.tokenType;
  const claims: AccessTokenClaims = session.claims;
  const sub: string = claims.sub;
  const jkt: string | undefined = claims.cnf?.jkt;
  const res: Response = await session.fetch("https://api.example/orders", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ symbol: "ETH-USDC" }),
  });
  const fresh: TokenResponse = await session.refresh();
  await session.revoke();
  console.log(kind, sub, jkt, res.status, fresh.access_token);

  const key: DpopKey = await DpopKey.generate();
  const proof: string = await key.proof({ method: "GET", url: "https://api.example/account", accessToken: "at" });
  const again: DpopKey = await DpopKey.fromKeyPair(key.keyPair);
  await saveDpopKey(key, { name: "my-dapp" });
  const loaded: DpopKey | null = await loadDpopKey({ name: "my-dapp" });
  await deleteDpopKey({ name: "my-dapp" });
  console.log(loaded?.thumbprint);
  console.log(proof, again.thumbprint, key.publicJwk.crv);

  const client = new DidAuthClient({ issuer: "https://auth.example", clientId: "my-dapp", dpop: key });
  const result = await client.signIn({ provider, expiresIn: 120 });
  const address: `0x${string}` = result.address;
  const { url, request } = await client.authorizationRequest({ redirectUri: "https://app.example/cb" });
  const done = await client.finishAuthorization(new URL(url).searchParams, request);
  const restored = client.session(done.tokens, { address });
  const otp = await client.enrollOtp(restored.accessToken);
  console.log(otp.otpauth_uri, decodeJwt<{ sub: string }>(restored.accessToken).sub);

  try {
    buildSiweMessage({ domain: "a.example", address, uri: "https://a.example", chainId: 1, nonce: "abcdefgh", issuedAt: "2026-01-01T00:00:00Z" });
  } catch (err) {
    if (err instanceof DidAuthError) {
      const server: string | undefined = err.error;
      const words: string | undefined = err.errorDescription;
      console.log(err.code, err.status, server, words);
    }
  }

  // @ts-expect-error clientId is required
  await signIn(provider, { issuer: "https://auth.example" });
  // @ts-expect-error a provider needs request()
  await signIn({}, { clientId: "x" });
  // @ts-expect-error the token type is "Bearer" | "DPoP"
  const wrong: "Basic" = session.tokenType;
  console.log(wrong);
}
