"""One origin rule (RFC 6454 §6.2 serialisation) for a client's `origins` and its
`demo_api_origins`: before, `origins` had its own, looser parser that accepted a wildcard
host or a port no browser can send, which can never match a real Origin header."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from did_auth.config.models import ClientConfig

BASE = {
    "client_id": "dapp",
    "domains": ["app.example"],
    "uris": ["https://app.example/login"],
    "chain_ids": [1],
    "audiences": ["api"],
    "scopes": ["read"],
}


@pytest.mark.parametrize(
    "origin",
    ["https://*.example.com", "https://app.example:99999", "https://App.example",
     "https://app.example/", "https://user@app.example", "ftp://app.example"],
)
def test_origins_and_demo_api_origins_refuse_the_same_values(origin: str) -> None:
    with pytest.raises(ValidationError):
        ClientConfig.model_validate({**BASE, "origins": [origin]})
    with pytest.raises(ValidationError):
        ClientConfig.model_validate({**BASE, "demo": True, "demo_api_origins": [origin]})


def test_a_plain_origin_is_accepted_by_both() -> None:
    c = ClientConfig.model_validate(
        {**BASE, "origins": ["https://app.example:8443"], "demo": True,
         "demo_api_origins": ["https://app.example:8443"]}
    )
    assert c.origins == ["https://app.example:8443"]
