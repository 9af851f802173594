"""The pure core: the protocols (EIP-4361, DIDs, signatures), the use cases (logins, OIDC,
OTP, withdrawals, revocations), policy and tokens.

Nothing here performs I/O of its own or imports a web framework, Redis or web3: the core
receives a store, a chain reader, a clock, a signing backend and an audit sink through the
seams it owns (`did_auth.core.ports` and the protocols next to the code that uses them).
`tests/test_import_rules.py` enforces this.
"""
