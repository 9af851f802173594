"""Interop with the reference JavaScript DID stack (ethr-did-resolver, did-resolver, did-jwt)."""
