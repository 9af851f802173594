// Errors of the did-auth client. Every failure is a DidAuthError with a `code` the UI can act
// on and a `message` written for the user; a refusal by the server also carries the server's
// own answer, `error` and `errorDescription` (its {"error", "error_description"} body, RFC 6749
// §5.2 / RFC 6750 §3) and the HTTP `status`.

export class DidAuthError extends Error {
  constructor(code, message, detail = undefined, { status = undefined } = {}) {
    super(message);
    this.name = "DidAuthError";
    this.code = code;
    this.detail = detail;
    this.status = status;
    const body = detail && typeof detail === "object" ? detail : null;
    this.error = typeof body?.error === "string" ? body.error : undefined;
    this.errorDescription = typeof body?.error_description === "string" ? body.error_description : undefined;
  }
}

/** The DidAuthError for a did-auth error answer ({error, error_description}, status). */
export function serverError(status, body, { prefix = "Sign-in failed" } = {}) {
  const code = body?.error ?? "server";
  const text = body?.error_description ?? `the server answered ${status}`;
  const opts = { status };
  if (code === "invalid_grant" && /nonce/i.test(text)) {
    return new DidAuthError(
      "nonce_expired",
      "The sign-in code expired or was already used before the signature arrived. Try again to get a fresh one.",
      body,
      opts,
    );
  }
  if (code === "invalid_grant" && /request (expired|was already used)|expired or was already used: go back/i.test(text)) {
    return new DidAuthError(
      "request_expired",
      "This sign-in request has expired. Go back to the application and start again.",
      body,
      opts,
    );
  }
  if (status === 429) {
    return new DidAuthError("rate_limited", "Too many attempts. Wait a moment, then try again.", body, opts);
  }
  return new DidAuthError(code, `${prefix}: ${text}`, body, opts);
}

export function networkError(err, what = "the sign-in server") {
  return new DidAuthError("network", `Could not reach ${what}. Check your connection and try again.`, err);
}
