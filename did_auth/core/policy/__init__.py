"""Per-client policy: which domains, URIs, chains, audiences and scopes a client may use."""
