"""The dApp client package, clients/js (@did-auth/client): its Node test-runner suite against
live servers started here (did-auth on embedded defaults, the example trading API, and a
did-auth demanding DPoP nonces), its TypeScript declarations under `tsc --noEmit`, and one
source: the server serves the package's own files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge.web.procs import spawn
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer, start_server, stop_server

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "clients" / "js"
# The Node suite logs in about ten times from one address within a minute.
LIMITS = {
    "DID_AUTH_RATE_LIMITS__VERIFY_PER_IP": "600/m",
    "DID_AUTH_RATE_LIMITS__VERIFY_PER_SUBJECT": "600/m",
}


@pytest.fixture(scope="module")
def issuer() -> Iterator[LiveServer]:
    server = start_server({}, env=LIMITS)  # embedded defaults: the `demo` client, chain 31337
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def nonce_issuer() -> Iterator[LiveServer]:
    """RFC 9449 §8: this one demands server-provided DPoP nonces (`dpop_nonce = true`)."""
    server = start_server({}, env={**LIMITS, "DID_AUTH_DPOP_NONCE": "true"})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def trading_api(issuer: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("js-package-api") / "api.log"
    cmd = [
        sys.executable,
        "examples/trading_api.py",
        "--issuer",
        issuer.url,
        "--audience",
        "trading-api",
        "--port",
        str(port),
    ]
    running = spawn(cmd, f"http://127.0.0.1:{port}", log)
    yield running.url
    running.stop()


def _count(output: str, name: str) -> int:
    match = re.search(rf"^# {name} (\d+)$", output, re.MULTILINE)
    assert match, f"no '# {name}' line in the node --test output:\n{output[-4000:]}"
    return int(match.group(1))


def test_node_test_runner_suite_against_live_servers(
    issuer: LiveServer, nonce_issuer: LiveServer, trading_api: str
) -> None:
    env = {
        **os.environ,
        "DID_AUTH_TEST_ISSUER": issuer.url,
        "DID_AUTH_TEST_NONCE_ISSUER": nonce_issuer.url,
        "DID_AUTH_TEST_API": trading_api,
        "NODE_OPTIONS": "--no-warnings",
    }
    done = subprocess.run(
        ["node", "--test", "--test-reporter=tap", "clients/js/test/"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert _count(output, "fail") == 0
    assert _count(output, "cancelled") == 0
    assert _count(output, "skipped") == 0
    # live.test.mjs (6) and unit.test.mjs (19): every test ran.
    assert _count(output, "pass") >= 25, output[-3000:]


def test_typescript_declarations_compile_with_tsc() -> None:
    """An example dApp in TypeScript type-checks against src/index.d.ts, resolved through the
    package's `exports` (its `@ts-expect-error` lines prove misuses are refused)."""
    done = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "tsc"), "-p", "clients/js/tsconfig.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_package_json_exports_the_module_and_its_types() -> None:
    meta = json.loads((PACKAGE / "package.json").read_text())
    assert meta["type"] == "module"
    assert meta["exports"]["."] == {"types": "./src/index.d.ts", "default": "./src/index.js"}
    assert meta["types"] == "./src/index.d.ts"
    assert "dependencies" not in meta  # no runtime dependency, no build step


def test_one_source_the_server_serves_the_package_files() -> None:
    """did_auth/edge/web/static/client is a link to clients/js/src (git stores one copy), and no
    other copy of the client module is kept in the repository."""
    link = ROOT / "did_auth" / "edge" / "web" / "static" / "client"
    assert link.is_symlink()
    assert link.resolve() == (PACKAGE / "src").resolve()
    assert not (ROOT / "examples" / "did-auth-client.js").exists()
    shim = (ROOT / "did_auth" / "edge" / "web" / "static" / "did-auth-client.js").read_text()
    assert [line for line in shim.splitlines() if not line.startswith("//")] == [
        'export * from "./client/index.js";'
    ]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"edge/web/static/client/*.js"' in pyproject  # a wheel holds the files themselves


def test_packed_tarball_installs_and_type_checks_in_a_fresh_project(tmp_path: Path) -> None:
    """What a dApp team gets: `npm pack`, `npm install <tarball>` in an empty project (no
    registry: the package has no dependency), then Node imports it and `tsc` finds its types
    through `exports`."""
    packed = subprocess.run(
        ["npm", "pack", "--json", "--pack-destination", str(tmp_path)],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert packed.returncode == 0, packed.stderr[-2000:]
    manifest = json.loads(packed.stdout)[0]
    files = {f["path"] for f in manifest["files"]}
    assert {"package.json", "README.md", "src/index.js", "src/index.d.ts"} <= files
    assert not any(f.startswith(("test", "tsconfig")) for f in files)
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
    installed = subprocess.run(
        [
            "npm",
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            str(tmp_path / manifest["filename"]),
        ],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    (app / "main.mjs").write_text(
        'import { DpopKey, signIn } from "@did-auth/client";\n'
        "const key = await DpopKey.generate();\n"
        "console.log(typeof signIn, key.keyPair.privateKey.extractable);\n"
    )
    ran = subprocess.run(["node", "main.mjs"], cwd=app, capture_output=True, text=True, timeout=60)
    assert ran.stdout.strip() == "function false", ran.stderr[-2000:]
    (app / "main.ts").write_text(
        'import { signIn, type Session } from "@did-auth/client";\n'
        "export const go = (p: { request(a: { method: string }): Promise<unknown> }) =>\n"
        '  signIn(p, { clientId: "x", dpop: true }).then((s: Session) => s.tokenType);\n'
    )
    (app / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "module": "NodeNext",
                    "moduleResolution": "NodeNext",
                    "target": "ES2022",
                    "lib": ["ES2022", "DOM"],
                    "types": [],
                    "strict": True,
                    "noEmit": True,
                    # index.d.ts itself is checked in full by the test above.
                    "skipLibCheck": True,
                },
                "files": ["main.ts"],
            }
        )
    )
    checked = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "tsc"), "-p", str(app)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert checked.returncode == 0, checked.stdout[-3000:]
