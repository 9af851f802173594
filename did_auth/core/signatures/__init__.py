"""Signature primitives: EIP-191 personal_sign recovery (coincurve) and EIP-55 addresses."""

from did_auth.core.signatures import eip191
from did_auth.core.signatures.eip191 import *  # noqa: F403 - the package exports eip191's names

__all__ = list(eip191.__all__)
