// The did-auth client (the @did-auth/client package, clients/js/ in the repository), kept at
// this address for dApps that import it from here. The package's modules are served from
// /static/client/; this file only re-exports them, so there is one source.
export * from "./client/index.js";
