"""`scripts/serve.sh` on a fresh checkout, as the README's first command: it says what it is
doing, one line per step, while it creates `.venv` and installs (no minute of silence), and
shows nothing else: pip's output goes to `.venv/install.log`, and the build of did-auth and
the verifier raises no deprecation warning (PEP 639 license metadata). Run again, it installs
nothing and only starts the server.

The checkout is a copy of the repository's tracked files in a scratch folder, so the real
install (a minute or two: pip, the dependencies from the package index) touches neither this
checkout nor its `.venv`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.fixtures.redis_server import free_port
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[2]
INSTALL = [
    "did-auth: creating .venv",
    "did-auth: updating pip",
    "did-auth: installing did-auth (about a minute)",
]
STARTING = "did-auth: starting server"


def fresh_checkout(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():  # tracked, not deleted in the working tree
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def serve(checkout: Path, timeout: float) -> str:
    """Runs scripts/serve.sh until the server answers /healthz; returns everything it printed
    (stdout and stderr) up to then."""
    port = free_port()
    out = checkout.parent / f"serve-{port}.out"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DID_AUTH_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["scripts/serve.sh", "--port", str(port)], cwd=checkout, stdout=sink,
            stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError("serve.sh exited:\n" + out.read_text(errors="replace"))
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=timeout, interval=0.5, what="serve.sh to answer /healthz")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return out.read_text(errors="replace")


def before_start(output: str) -> list[str]:
    lines = output.splitlines()
    assert STARTING in lines, output
    return lines[: lines.index(STARTING)]


@pytest.mark.timeout(900)
def test_serve_sh_says_what_it_installs_and_warns_of_nothing(tmp_path: Path) -> None:
    checkout = fresh_checkout(tmp_path / "did-auth")
    first = serve(checkout, timeout=600)
    assert before_start(first) == INSTALL, first
    assert "Deprecat" not in first and "Traceback" not in first, first
    log = (checkout / ".venv" / "install.log").read_text(errors="replace")
    assert "Successfully installed" in log and "did-auth" in log
    assert "Deprecat" not in log, log  # no warning hidden in the log either

    again = serve(checkout, timeout=120)
    assert before_start(again) == [], again  # installed already: straight to the server
