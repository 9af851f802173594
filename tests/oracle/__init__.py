"""Test oracles that pin older libraries than the server, each run in an environment of its own.

`signinwithethereum` 5.0.2 (import name `siwe`) pins web3 < 8 and eth-account < 0.14; the
server runs on web3 8 and eth-account 0.14. So the oracle is installed into `.venv-oracle`
(tests/oracle/requirements.txt; `scripts/bootstrap.sh --dev`, which `scripts/test.sh` runs,
creates it) and `SiweOracle` talks to it over a pipe (`siwe_oracle.py`, one JSON line each
way). The benchmark baseline (scripts/bench/baseline_server.py) runs on that interpreter too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
SCRIPT = Path(__file__).resolve().parent / "siwe_oracle.py"


class OracleUnavailable(RuntimeError):
    pass


def oracle_python() -> Path:
    """The oracle environment's interpreter (`SIWE_ORACLE_PYTHON` overrides)."""
    path = Path(os.environ.get("SIWE_ORACLE_PYTHON") or ROOT / ".venv-oracle" / "bin" / "python")
    if not path.exists():
        raise OracleUnavailable(
            f"{path} is missing: the signinwithethereum oracle runs in its own environment; "
            "create it with scripts/bootstrap.sh --dev (scripts/test.sh does)"
        )
    return path


class SiweOracle:
    """A `siwe_oracle.py` process in `.venv-oracle`; requests are answered in order."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [str(oracle_python()), str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, encoding="utf-8", cwd=SCRIPT.parent,
            # nothing from the server's environment leaks in (PYTHONPATH, a venv's site)
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        )
        self.versions: dict[str, str] = self.request("hello")["versions"]

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise OracleUnavailable(f"the oracle process exited ({self._proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError(f"oracle {op}: {reply['error']}")
        return reply

    def parse(self, texts: list[str]) -> list[tuple[str, Any]]:
        """("accept", (fields, prepared text)) or ("reject", None) for each text."""
        return [
            ("accept", (v[1], v[2])) if v[0] == "accept" else ("reject", None)
            for v in self.request("parse", texts=texts)["verdicts"]
        ]

    def time(
        self, case: str, text: str, signature: str, loops: int, *,
        timestamp: str | None = None, provider_url: str | None = None,
    ) -> int:
        """Nanoseconds for `loops` calls of `case`, measured inside the oracle process."""
        reply = self.request(
            "time", case=case, text=text, signature=signature, loops=loops,
            timestamp=timestamp, provider_url=provider_url,
        )
        return int(reply["ns"])

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> SiweOracle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
