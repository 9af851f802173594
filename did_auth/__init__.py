"""did-auth: SIWE (EIP-4361) and DID logins issuing scoped RFC 9068 access tokens."""

__version__ = "0.1.0"
