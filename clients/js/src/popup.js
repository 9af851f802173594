// Sign in through did-auth's hosted page in a popup window, for a dApp on another origin:
// the hosted page hands the tokens back by postMessage to the registered opener origin only.
import { DidAuthError } from "./errors.js";

/**
 * Sign in through did-auth's hosted page in a popup, for a dApp on another origin (which
 * must be one of the client's registered `origins`). Call it from a click handler (pop-up
 * blockers). Resolves to {issuer, client_id, audience, address, chain_id, tokens}.
 */
export function signInWithPopup({ issuer, clientId, audience = undefined, scope = undefined,
                                  width = 460, height = 760 }) {
  const issuerOrigin = new URL(issuer).origin;
  const params = new URLSearchParams({ client_id: clientId, origin: globalThis.location.origin });
  if (audience) params.set("audience", audience);
  if (scope) params.set("scope", scope);
  const popup = globalThis.open(`${issuerOrigin}/signin?${params}`, "did-auth-signin",
                                `popup,width=${width},height=${height}`);
  if (!popup) {
    return Promise.reject(new DidAuthError("popup_blocked",
      "The sign-in window was blocked. Allow pop-ups for this site and try again."));
  }
  return new Promise((resolve, reject) => {
    let closedChecks = 0;
    const onMessage = (event) => {
      // Only the popup we opened, on the issuer's origin, may answer.
      if (event.origin !== issuerOrigin || event.source !== popup) return;
      if (event.data?.type !== "did-auth:signed-in") return;
      cleanup();
      resolve(event.data.session);
    };
    const timer = setInterval(() => {
      // Closed for two checks in a row: a result posted just before closing has arrived.
      closedChecks = popup.closed ? closedChecks + 1 : 0;
      if (closedChecks >= 2) {
        cleanup();
        reject(new DidAuthError("popup_closed", "The sign-in window was closed before you signed in."));
      }
    }, 250);
    function cleanup() {
      clearInterval(timer);
      globalThis.removeEventListener("message", onMessage);
    }
    globalThis.addEventListener("message", onMessage);
  });
}
