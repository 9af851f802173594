"""Request bodies of the JSON endpoints (strict types; unknown fields are ignored)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from did_auth.core.flows.guard import RequestContext


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class _ClientAuth(_Body):
    """Client authentication in a JSON login request (RFC 6749 §2.3.1 client_secret_post,
    RFC 7523 §2.2 private_key_jwt); `Authorization: Basic` works too. Required for
    confidential clients only."""

    client_id: str = Field(min_length=1, max_length=128)
    client_secret: str | None = Field(default=None, max_length=1024)
    client_assertion_type: str | None = Field(default=None, max_length=256)
    client_assertion: str | None = Field(default=None, max_length=8192)


class NonceRequest(_Body):
    client_id: str = Field(min_length=1, max_length=128)


class SiweVerifyRequest(_ClientAuth):
    message: str = Field(min_length=1, max_length=16 * 1024)
    signature: str = Field(min_length=4, max_length=2 + 2 * 16 * 1024)
    audience: str | None = Field(default=None, max_length=256)
    scope: str | None = Field(default=None, max_length=2048)
    otp: str | None = Field(default=None, max_length=16)


class NonceResponse(BaseModel):
    nonce: str
    expires_in: int


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    scope: str


class OtpConfirmRequest(_Body):
    otp: str = Field(min_length=1, max_length=16)


class SiweProof(_Body):
    """An EIP-4361 message and its signature (OTP re-enrolment)."""

    message: str = Field(min_length=1, max_length=16 * 1024)
    signature: str = Field(min_length=4, max_length=2 + 2 * 16 * 1024)


class OtpEnrollRequest(_Body):
    """`POST /otp/enroll`: nothing (first factor, fresh login), `otp` (a code of the current
    factor) or `siwe` (a wallet signature for re-enrolment) to replace an enrolled factor."""

    otp: str | None = Field(default=None, max_length=16)
    siwe: SiweProof | None = None
    # An account with a passkey: an assertion of it (binding urn:did-auth:second-factor:add).
    webauthn: dict[str, Any] | None = None


class DidChallengeRequest(_Body):
    client_id: str = Field(min_length=1, max_length=128)
    did: str = Field(min_length=1, max_length=512)
    audience: str | None = Field(default=None, max_length=256)


class DidChallengeResponse(BaseModel):
    challenge: str
    audience: str
    expires_in: int


class DidVerifyRequest(_ClientAuth):
    proof: str = Field(min_length=1, max_length=16 * 1024)
    audience: str | None = Field(default=None, max_length=256)
    scope: str | None = Field(default=None, max_length=2048)
    otp: str | None = Field(default=None, max_length=16)


def direct_login_fields(
    body: SiweVerifyRequest | DidVerifyRequest,
    dpop: list[str],
    authorization: str | None,
    ctx: RequestContext,
) -> dict[str, Any]:
    """The members of a direct login's request (`did_auth.core.flows.login.SiweProofLogin`,
    `DidProofLogin`) besides its proof: the client, what it asks for, how it authenticates
    (body, Authorization header) and the DPoP header values."""
    return {
        "client_id": body.client_id,
        "audience": body.audience,
        "scope": body.scope,
        "otp": body.otp,
        "dpop_proofs": dpop,
        "authorization": authorization,
        "client_secret": body.client_secret,
        "client_assertion_type": body.client_assertion_type,
        "client_assertion": body.client_assertion,
        "ctx": ctx,
    }


class WithdrawalDetail(BaseModel):
    """RFC 9396 authorization detail of type `withdrawal` (the values the wallet signs)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^withdrawal$")
    audience: str = Field(min_length=1, max_length=256)
    asset: str = Field(min_length=1, max_length=32)
    amount: str = Field(pattern=r"^(0|[1-9][0-9]*)(\.[0-9]+)?$", max_length=78)
    destination: str = Field(min_length=1, max_length=128)
    network: str = Field(min_length=1, max_length=64)


class TransactionAuthorizeRequest(BaseModel):
    """`POST /transactions/authorize`: the withdrawal, the transaction nonce, the approval's
    expiry, the account's EIP-712 signature and one second factor (`otp` or `webauthn`).
    Documentation only: the body is read strictly by `did_auth.core.oauth.authorization_details`."""

    model_config = ConfigDict(extra="forbid")

    authorization_details: list[WithdrawalDetail] = Field(min_length=1, max_length=1)
    nonce: str = Field(min_length=1, max_length=64)
    expires_at: int
    signature: str = Field(min_length=4, max_length=2 + 2 * 32 * 1024)
    otp: str | None = Field(default=None, max_length=16)
    webauthn: dict[str, object] | None = None


class TransactionTokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    authorization_details: list[WithdrawalDetail]
