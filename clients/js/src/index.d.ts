// Type declarations of @did-auth/client (hand-written; the package is plain ES modules).
// Checked by `tsc --noEmit` over clients/js/test/types-check.ts.

// --- errors ---------------------------------------------------------------------------------

/** A did-auth error answer (RFC 6749 §5.2, RFC 6750 §3). */
export interface ServerErrorBody {
  error: string;
  error_description?: string;
  [key: string]: unknown;
}

export type DidAuthErrorCode =
  | "wallet_missing"
  | "user_rejected"
  | "wallet_busy"
  | "wrong_chain"
  | "no_account"
  | "wallet"
  | "nonce_expired"
  | "request_expired"
  | "rate_limited"
  | "network"
  | "popup_blocked"
  | "popup_closed"
  | "state"
  | "iss"
  | "id_token"
  | "no_refresh_token"
  | "dpop_key_missing"
  | "server"
  // the server's own `error` (invalid_grant, invalid_scope, access_denied, ...)
  | (string & {});

export class DidAuthError extends Error {
  constructor(code: DidAuthErrorCode, message: string, detail?: unknown, options?: { status?: number });
  readonly name: "DidAuthError";
  /** What the UI can act on. */
  code: DidAuthErrorCode;
  /** The server's body, or the underlying error. */
  detail: unknown;
  /** The HTTP status when did-auth answered. */
  status: number | undefined;
  /** The server's `error` (e.g. "invalid_grant"), when it answered with one. */
  error: string | undefined;
  /** The server's `error_description`. */
  errorDescription: string | undefined;
}

// --- Keccak-256, EIP-55, EIP-4361 ---------------------------------------------------------------

export function keccak256(bytes: Uint8Array): Uint8Array;
export function toHex(bytes: Uint8Array): string;
/** EIP-55 checksum address; throws DidAuthError("no_account") for anything else. */
export function toChecksumAddress(address: string): `0x${string}`;

export function isoTime(date?: Date): string;

export interface SiweFields {
  scheme?: string;
  domain: string;
  address: string;
  statement?: string | null;
  uri: string;
  version?: "1";
  chainId: number;
  nonce: string;
  issuedAt: string;
  expirationTime?: string;
  notBefore?: string;
  requestId?: string | null;
  resources?: readonly string[];
}

/** The exact EIP-4361 text; throws when a field breaks the EIP's ABNF. */
export function buildSiweMessage(fields: SiweFields): string;

// --- wallets (EIP-1193, EIP-6963) ---------------------------------------------------------------

export interface RequestArguments {
  readonly method: string;
  readonly params?: readonly unknown[] | object;
}

/** An EIP-1193 provider. */
export interface Eip1193Provider {
  request(args: RequestArguments): Promise<unknown>;
  on?(event: string, listener: (...args: unknown[]) => void): unknown;
  removeListener?(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** A wallet found in the page (EIP-6963 `info` + provider, or the legacy window.ethereum). */
export interface Wallet {
  /** The EIP-6963 uuid, or "injected" for window.ethereum. */
  id: string;
  name: string;
  /** A data: image URI, or "" (other icon URIs are dropped). */
  icon: string;
  rdns: string;
  provider: Eip1193Provider;
}

export interface DiscoveryOptions {
  /** Where the events are dispatched (default: globalThis, i.e. window). */
  target?: EventTarget & { ethereum?: unknown };
}

export const CHAIN_NAMES: Readonly<Record<number, string>>;
export function chainName(id: number): string;
/** EIP-6963 discovery for as long as the page lives; returns a function that stops it. */
export function watchWallets(onWallet: (wallet: Wallet) => void, options?: DiscoveryOptions): () => void;
/** The wallets that announced themselves within `timeoutMs` (default 400), plus window.ethereum. */
export function discoverWallets(options?: DiscoveryOptions & { timeoutMs?: number }): Promise<Wallet[]>;
export function walletError(err: unknown): DidAuthError;
export function connectWallet(
  provider: Eip1193Provider | null | undefined,
  options?: { chainIds?: readonly number[] | null },
): Promise<{ address: `0x${string}`; chainId: number }>;
/** EIP-191 personal_sign of UTF-8 text. */
export function personalSign(provider: Eip1193Provider, address: string, text: string): Promise<`0x${string}`>;

// --- DPoP (RFC 9449) ----------------------------------------------------------------------------

export interface EcPublicJwk {
  kty: "EC";
  crv: "P-256";
  x: string;
  y: string;
}

export interface DpopKeyOptions {
  crypto?: Crypto;
  /** Milliseconds since the epoch (default Date.now), for `iat`. */
  now?: () => number;
}

export interface DpopProofRequest {
  method: string;
  url: string | URL;
  /** For requests to resources: adds `ath` (RFC 9449 §4.2). */
  accessToken?: string;
  /** Default: the last DPoP-Nonce of the URL's origin. */
  nonce?: string;
}

/** A non-extractable ECDSA P-256 key signing ES256 DPoP proofs. */
export class DpopKey {
  protected constructor(keyPair: CryptoKeyPair, publicJwk: EcPublicJwk, thumbprint: string, options?: DpopKeyOptions);
  static generate(options?: DpopKeyOptions): Promise<DpopKey>;
  /** Rebuild from a stored CryptoKeyPair (e.g. from IndexedDB); refuses an extractable key. */
  static fromKeyPair(keyPair: CryptoKeyPair, options?: DpopKeyOptions): Promise<DpopKey>;
  /** Structured-cloneable: keep it in IndexedDB to survive a reload. */
  readonly keyPair: CryptoKeyPair;
  readonly publicJwk: EcPublicJwk;
  /** RFC 7638 thumbprint: the token's `cnf.jkt`. */
  readonly thumbprint: string;
  nonceFor(url: string | URL): string | undefined;
  rememberNonce(url: string | URL, response: Response): string | undefined;
  /** A `DPoP` header value: a dpop+jwt with jti, htm, htu, iat (+ ath, nonce). */
  proof(request: DpopProofRequest): Promise<string>;
}

export function createDpopKey(options?: DpopKeyOptions): Promise<DpopKey>;
/** Keep a DpopKey's CryptoKeyPair in this origin's IndexedDB (browsers): still non-extractable. */
export function saveDpopKey(key: DpopKey, options?: { name?: string; indexedDB?: IDBFactory }): Promise<void>;
/** The DpopKey saved under `name` (default "default"), or null. */
export function loadDpopKey(options?: { name?: string; indexedDB?: IDBFactory }): Promise<DpopKey | null>;
export function deleteDpopKey(options?: { name?: string; indexedDB?: IDBFactory }): Promise<void>;
export function jwkThumbprint(jwk: EcPublicJwk, options?: { crypto?: Crypto }): Promise<string>;
export function accessTokenHash(accessToken: string, options?: { crypto?: Crypto }): Promise<string>;
/** The request URI without query and fragment. */
export function htuOf(url: string | URL): string;

// --- tokens, OIDC helpers ---------------------------------------------------------------------

/** A token response of /siwe/verify, /did/verify or /token. */
export interface TokenResponse {
  access_token: string;
  token_type: "Bearer" | "DPoP" | (string & {});
  expires_in?: number;
  refresh_token?: string;
  scope?: string;
  id_token?: string;
  /** Added by Session: when the access token expires (seconds since the epoch). */
  expires_at?: number;
  [key: string]: unknown;
}

/** RFC 9068 access-token claims (did-auth's). */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope: string;
  sid?: string;
  auth_time?: number;
  amr?: string[];
  cnf?: { jkt: string };
  [claim: string]: unknown;
}

/** A JWT's claims, NOT verified (for display). */
export function decodeJwt<T = Record<string, unknown>>(token: string): T;
export function randomString(bytes?: number, options?: { crypto?: Crypto }): string;
export function createPkce(options?: { crypto?: Crypto }): Promise<{ verifier: string; challenge: string; method: "S256" }>;

// --- the client -------------------------------------------------------------------------------

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** did-auth's URL (default: this page's origin). */
  issuer?: string;
  clientId: string;
  audience?: string;
  scope?: string;
  fetchImpl?: FetchLike;
  /** Bind every token to this key (see useDpop). */
  dpop?: DpopKey;
}

export type SignInStep = "connect" | "nonce" | "sign" | "verify";

export interface SignInOptions {
  /** Accepted chains; a wallet elsewhere is asked to switch (EIP-3326). */
  chainIds?: readonly number[] | null;
  statement?: string;
  resources?: readonly string[];
  requestId?: string;
  /** Default: this page's host. */
  domain?: string;
  /** Default: this page's URL. */
  uri?: string;
  scheme?: string;
  /** Seconds until the message's Expiration Time (default 300; 0: none). */
  expiresIn?: number;
  onStep?: (step: SignInStep) => void;
  audience?: string;
  scope?: string;
  /** A TOTP code, for step-up scopes. */
  otp?: string;
}

export interface SignInResult<T = TokenResponse> {
  tokens: T;
  address: `0x${string}`;
  chainId: number;
  message: string;
  signature: `0x${string}`;
}

export interface PrepareMessageOptions {
  address: string;
  chainId: number;
  statement?: string;
  resources?: readonly string[];
  requestId?: string;
  domain?: string;
  uri?: string;
  expiresIn?: number;
  scheme?: string;
}

export interface AuthorizationRequestState {
  verifier: string;
  state: string;
  nonce: string;
  redirectUri: string;
}

export interface OtpEnrolment {
  secret: string;
  otpauth_uri: string;
  replaces: boolean;
  [key: string]: unknown;
}

export interface SessionOptions {
  address?: string;
  chainId?: number;
  message?: string;
  /** Called after each refresh: store the rotated refresh token. */
  onTokens?: (session: Session) => void | Promise<void>;
  now?: () => number;
}

export class DidAuthClient {
  constructor(options: ClientOptions);
  readonly issuer: string;
  readonly clientId: string;
  audience: string | undefined;
  scope: string | undefined;
  dpopKey: DpopKey | null;
  /** Bind this client's tokens to `key`, or to a new non-extractable key. */
  useDpop(key?: DpopKey): Promise<DpopKey>;
  nonce(): Promise<{ nonce: string; expires_in?: number }>;
  verify(args: { message: string; signature: string; audience?: string; scope?: string; otp?: string }): Promise<TokenResponse>;
  prepareMessage(options: PrepareMessageOptions): Promise<string>;
  signIn<T = TokenResponse>(
    options: SignInOptions & {
      provider: Eip1193Provider;
      /** Replaces the /siwe/verify call (the hosted page's /authorize/complete). */
      submit?: ((signed: { message: string; signature: string }) => Promise<T>) | null;
    },
  ): Promise<SignInResult<T>>;
  /** signIn with audience = the issuer: tokens for did-auth's own /otp routes. */
  signInForAccount(options: SignInOptions & { provider: Eip1193Provider }): Promise<SignInResult>;
  enrollOtp(
    accessToken: string,
    options?: { otp?: string; siwe?: { message: string; signature: string }; tokenType?: string },
  ): Promise<OtpEnrolment>;
  confirmOtp(accessToken: string, otp: string, options?: { tokenType?: string }): Promise<{ enrolled: boolean; replaced: boolean }>;
  userinfo(accessToken: string, options?: { tokenType?: string }): Promise<{ sub: string; [claim: string]: unknown }>;
  refresh(refreshToken: string, options?: { scope?: string }): Promise<TokenResponse>;
  revoke(token: string): Promise<void>;
  completeAuthorization(args: { requestId: string; message: string; signature: string; otp?: string }): Promise<{ redirect: string }>;
  cancelAuthorization(requestId: string): Promise<{ redirect: string }>;
  authorizationRequest(options: {
    redirectUri: string;
    scope?: string;
    audience?: string;
    openid?: boolean;
    extra?: Record<string, string>;
  }): Promise<{ url: string; request: AuthorizationRequestState }>;
  exchangeCode(args: { code: string; redirectUri: string; codeVerifier: string }): Promise<TokenResponse>;
  finishAuthorization(
    query: URLSearchParams | string | URL,
    request: AuthorizationRequestState | null,
  ): Promise<{ tokens: TokenResponse; idTokenClaims: Record<string, unknown> & { sub: string; nonce?: string } }>;
  session(tokens: TokenResponse, options?: SessionOptions): Session;
}

export class Session {
  constructor(client: DidAuthClient, tokens: TokenResponse, options?: SessionOptions);
  readonly client: DidAuthClient;
  readonly tokens: TokenResponse;
  readonly address: string | undefined;
  readonly chainId: number | undefined;
  readonly message: string | undefined;
  /** Milliseconds since the epoch, when known. */
  readonly expiresAt: number | undefined;
  readonly accessToken: string;
  readonly refreshToken: string | undefined;
  readonly tokenType: "Bearer" | "DPoP";
  readonly claims: AccessTokenClaims;
  readonly expired: boolean;
  onTokens: SessionOptions["onTokens"];
  /** Refresh (the refresh token rotates); concurrent calls share one request. */
  refresh(options?: { scope?: string }): Promise<TokenResponse>;
  /** `Authorization` (and `DPoP`) headers for one request. */
  authHeaders(method: string, url: string): Promise<{ authorization: string; dpop?: string }>;
  /** fetch with the token attached; refreshes once on 401 invalid_token. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  revoke(): Promise<void>;
  toJSON(): {
    issuer: string;
    client_id: string;
    address: string | undefined;
    chain_id: number | undefined;
    tokens: TokenResponse;
  };
}

/** The `error` of a response's WWW-Authenticate challenge, if it can be read. */
export function challengeError(response: Response): string | undefined;

export interface SignInFunctionOptions extends SignInOptions {
  issuer?: string;
  clientId: string;
  /** true: a new non-extractable key; or a DpopKey. */
  dpop?: boolean | DpopKey;
  fetch?: FetchLike;
  onTokens?: SessionOptions["onTokens"];
}

/** SIWE with an EIP-1193 provider; resolves to a Session. */
export function signIn(provider: Eip1193Provider, options: SignInFunctionOptions): Promise<Session>;

export interface PopupSession {
  issuer: string;
  client_id: string;
  audience: string;
  address: string;
  chain_id: number;
  tokens: TokenResponse;
  received_at: number;
}

/** Sign in through did-auth's hosted page in a popup (call from a click handler). */
export function signInWithPopup(options: {
  issuer: string;
  clientId: string;
  audience?: string;
  scope?: string;
  width?: number;
  height?: number;
}): Promise<PopupSession>;
