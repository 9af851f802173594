"""Adapters: the core's seams implemented over the outside world: Redis or memory
(`store`), Ethereum JSON-RPC and the embedded EVM (`chain`), the audit trail and
Prometheus metrics (`monitoring`), PKCS#11 tokens (`hsm`)."""
