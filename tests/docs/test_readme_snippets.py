"""The README's login walk-through runs exactly as written against a live `did-auth serve`
on embedded defaults (no config): its Python block saved as `login.py`, then its shell block
(the example trading API in the background, `ACCESS_TOKEN` from `login.py`, curl /account,
then examples/bot_login.py authorising its key through `/dev/rpc`).

Only the ports change: the README's 8000 (did-auth) and 9000 (trading API) become free ones.
The blocks run in a scratch folder that looks like the repository's root to them (`.venv`
and `examples/` are links), so the checkout gets no `login.py`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(title: str, lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(section(title)) if kind == lang]


@pytest.fixture(scope="module")
def embedded_server() -> Iterator[LiveServer]:
    server = start_server({})  # no config: the embedded defaults
    yield server
    stop_server(server)


def scratch_root(tmp_path: Path) -> Path:
    venv = Path(sys.executable).parent.parent  # the interpreter running the tests: .venv
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    return tmp_path


def with_ports(text: str, issuer_port: int, api_port: int) -> str:
    return text.replace(":8000", f":{issuer_port}").replace("9000", str(api_port))


def run_sh(script: str, cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """Runs a shell block; kills what it left in the background (the `&` trading API)."""
    out = cwd / "sh.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["bash", "-e", "-c", script], cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")},
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    return code, out.read_text(errors="replace")


def test_the_login_walk_through_runs_as_written(
    embedded_server: LiveServer, tmp_path: Path
) -> None:
    title = "A login, step by step"
    (python_block,) = blocks(title, "python")
    # The shell blocks, in order, as one terminal session (the trading API started by the
    # first one serves the bot of the second).
    sh_block = "\n".join(blocks(title, "sh"))
    assert "$ACCESS_TOKEN" in sh_block and "ACCESS_TOKEN=" in sh_block
    assert re.search(r"(^|\s)python ", sh_block) is None, "examples run with .venv/bin/python"

    port = int(embedded_server.url.rsplit(":", 1)[1])
    api_port = free_port()
    root = scratch_root(tmp_path)
    (root / "login.py").write_text(with_ports(python_block, port, api_port))

    # The Python block alone: prints an access token (a compact JWT).
    login = subprocess.run(
        [str(root / ".venv" / "bin" / "python"), "login.py"], cwd=root, capture_output=True,
        text=True, timeout=60,
    )
    assert login.returncode == 0, (login.stderr, (tmp_path / "login.py").read_text())
    assert login.stdout.strip().count(".") == 2, login.stdout

    # The shell block: the trading API accepts the token the walk-through obtained.
    code, output = run_sh(with_ports(sh_block, port, api_port), root)
    assert code == 0, output
    # curl's /account for the SIWE login, then the bot's (examples/bot_login.py, its
    # owner's did:ethr authorised through /dev/rpc), each a JSON object.
    decoder = json.JSONDecoder()
    answers, rest = [], output.strip()
    while "{" in rest:
        rest = rest[rest.index("{"):]
        value, end = decoder.raw_decode(rest)
        answers.append(value)
        rest = rest[end:]
    subs = [a.get("sub", "") for a in answers]
    assert subs[0].startswith("did:pkh:eip155:31337:0x"), output
    assert "did:ethr:0x7a69:0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF" in subs, output
