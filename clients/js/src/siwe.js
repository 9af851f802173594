// EIP-4361 (Sign-In with Ethereum) message text, built exactly per the EIP's ABNF:
//
//   [ scheme "://" ] domain %s" wants you to sign in with your Ethereum account:" LF
//   address LF
//   LF
//   [ statement LF ]
//   LF
//   %s"URI: " uri LF
//   %s"Version: " version LF
//   %s"Chain ID: " chain-id LF
//   %s"Nonce: " nonce LF
//   %s"Issued At: " issued-at
//   [ LF %s"Expiration Time: " expiration-time ]
//   [ LF %s"Not Before: " not-before ]
//   [ LF %s"Request ID: " request-id ]
//   [ LF %s"Resources:" resources ]          resources = *( LF resource ), resource = "- " URI
//
// The fields are checked here against the same grammar as did-auth's strict parser, so a
// message the server would refuse is never put in front of the user to sign.

const UNRESERVED = "A-Za-z0-9._~\\-";
const GEN_DELIMS = ":/?#\\[\\]@";
const SUB_DELIMS = "!$&'()*+,;=";
// statement = *( reserved / unreserved / " " ); reserved = gen-delims / sub-delims
const STATEMENT_RE = new RegExp(`^[${UNRESERVED}${GEN_DELIMS}${SUB_DELIMS} ]*$`);
// nonce = 8*( ALPHA / DIGIT )
const NONCE_RE = /^[A-Za-z0-9]{8,}$/;
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;
// RFC 3339 date-time (EIP-4361 issued-at / expiration-time / not-before)
const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.\-]*$/;

/** RFC 3339 UTC timestamp with milliseconds, e.g. 2026-01-02T03:04:05.678Z. */
export function isoTime(date = new Date()) {
  return date.toISOString();
}

function present(value) {
  return value !== undefined && value !== null;
}

function bad(what) {
  return new Error(`SIWE message: ${what}`);
}

/** The exact EIP-4361 message text (ABNF order; optional fields only when given). */
export function buildSiweMessage(f) {
  for (const name of ["domain", "address", "uri", "chainId", "nonce", "issuedAt"]) {
    if (!present(f[name]) || f[name] === "") throw bad(`missing ${name}`);
  }
  if (present(f.statement) && /\n/.test(f.statement)) {
    throw bad("the statement must not contain a newline");
  }
  if (present(f.statement) && !STATEMENT_RE.test(f.statement)) {
    throw bad("the statement may hold only URI characters and spaces (EIP-4361 ABNF)");
  }
  if (!ADDRESS_RE.test(f.address)) throw bad("the address must be 0x and 40 hex digits (EIP-55)");
  if (!NONCE_RE.test(String(f.nonce))) throw bad("the nonce must be at least 8 letters or digits");
  const chainId = Number(f.chainId);
  if (!Number.isSafeInteger(chainId) || chainId < 0) throw bad("the chain id must be a non-negative integer");
  const version = f.version ?? "1";
  if (version !== "1") throw bad('the version must be "1"');
  for (const name of ["issuedAt", "expirationTime", "notBefore"]) {
    if (present(f[name]) && f[name] !== "" && !DATE_TIME_RE.test(f[name])) throw bad(`${name} is not an RFC 3339 date-time`);
  }
  if (present(f.scheme) && !SCHEME_RE.test(f.scheme)) throw bad("invalid scheme");
  for (const name of ["domain", "uri", "requestId"]) {
    if (present(f[name]) && /[\s]/.test(String(f[name]))) throw bad(`${name} must not contain white space`);
  }
  const origin = present(f.scheme) ? `${f.scheme}://${f.domain}` : f.domain;
  // address LF LF [ statement LF ] LF "URI: " (no statement: two empty lines).
  const lines = [`${origin} wants you to sign in with your Ethereum account:`, f.address, ""];
  if (present(f.statement)) lines.push(f.statement);
  lines.push("");
  lines.push(
    `URI: ${f.uri}`,
    `Version: ${version}`,
    `Chain ID: ${chainId}`,
    `Nonce: ${f.nonce}`,
    `Issued At: ${f.issuedAt}`,
  );
  if (f.expirationTime) lines.push(`Expiration Time: ${f.expirationTime}`);
  if (f.notBefore) lines.push(`Not Before: ${f.notBefore}`);
  if (present(f.requestId)) lines.push(`Request ID: ${f.requestId}`);
  if (f.resources && f.resources.length) {
    lines.push("Resources:");
    for (const r of f.resources) {
      if (/\s/.test(String(r))) throw bad("a resource must be a URI (no white space)");
      lines.push(`- ${r}`);
    }
  }
  return lines.join("\n");
}
