"""Where a revocation watcher stands on its chain: the last processed block, the hashes of
recently processed blocks (to find the fork point after a re-org) and the cursor's scope
(genesis hash + registry addresses, so a cursor of another chain is never resumed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import orjson

__all__ = ["MAX_RECENT", "Block", "Cursor"]

MAX_RECENT: Final = 128


@dataclass
class Cursor:
    """The last processed block, recent processed blocks' hashes, and the cursor's scope."""

    number: int
    hash: str
    scope: str
    recent: list[tuple[int, str]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "number": self.number,
                "hash": self.hash,
                "scope": self.scope,
                "recent": [[n, h] for n, h in self.recent],
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cursor | None:
        try:
            d = orjson.loads(raw)
            return cls(
                number=int(d["number"]),
                hash=str(d["hash"]),
                scope=str(d["scope"]),
                recent=[(int(n), str(h)) for n, h in d.get("recent", [])],
            )
        except (ValueError, KeyError, TypeError):
            return None

    def advanced(self, number: int, block_hash: str) -> Cursor:
        recent = [*(e for e in self.recent if e[0] < number), (number, block_hash)]
        return Cursor(number, block_hash, self.scope, recent[-MAX_RECENT:])


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    hash: str
    timestamp: int
