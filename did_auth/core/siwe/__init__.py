"""EIP-4361 Sign-In with Ethereum: strict parser/serialiser, EIP-191 checks, EIP-5573 ReCaps."""

from did_auth.core.siwe.message import SiweMessage
from did_auth.core.siwe.parse import MAX_MESSAGE_LENGTH
from did_auth.core.siwe.recaps import build_recap, extract_recap, recap_scopes
from did_auth.core.siwe.verify import check_times, recover_address, verify_eoa, verify_message

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "SiweMessage",
    "build_recap",
    "check_times",
    "extract_recap",
    "recap_scopes",
    "recover_address",
    "verify_eoa",
    "verify_message",
]
