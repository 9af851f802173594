"""Seams the core owns and the adapters implement: the key-value `Store` protocol and its
key names, and the audit / counter sinks."""
