"""Signing keys, JWKS, access and refresh tokens."""
