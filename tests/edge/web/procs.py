"""Processes for the web tests: spawn, wait for /healthz, stop (whole process group)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


class Proc:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def spawn(cmd: list[str], url: str, log: Path) -> Proc:
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")},
        start_new_session=True,
    )
    running = Proc(url, proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[1]} exited:\n{running.output()}")
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return running
        except httpx.HTTPError:
            time.sleep(0.1)
    running.stop()
    raise RuntimeError(f"{cmd[1]} did not start:\n{running.output()}")
