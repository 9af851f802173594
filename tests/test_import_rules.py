"""The layer rules of docs/architecture.md, checked on the source (AST, nothing imported).

The folders are the layers: `did_auth/core` (pure: SIWE, DID, signatures, flows, policy,
tokens, OAuth, and the seams in `core/ports`), `did_auth/adapters` (store, chain,
monitoring, hsm), `did_auth/edge` (HTTP: api, web), `did_auth/config` (typed settings),
and the wiring at the top (`services`, `cli*`, `__main__`).

* The core imports no web framework, server, Redis, web3 or PKCS#11 library, and nothing
  from the adapters, the HTTP edge or the wiring. It receives a store, a chain reader, a
  clock, a signing backend and an audit sink through seams it owns.
* Configuration is values: it imports the core (error types, parsers) and nothing else.
* The adapters import nothing from the HTTP edge or the wiring.
* The verifier distribution (`verifier/did_auth_verifier`) imports nothing from the server.
* No import cycles between did_auth modules.
* No private name (`_x`) is imported from another did_auth package: what a package shares
  it names publicly (store key names live in `did_auth.core.ports.store_keys`).

Every import counts: module level, inside functions, and under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "did_auth"
VERIFIER = ROOT / "verifier" / "did_auth_verifier"

CORE_PACKAGES = ("siwe", "did", "signatures", "flows", "policy", "tokens", "oauth", "ports")
ADAPTER_PACKAGES = ("store", "chain", "monitoring", "hsm")
EDGE_PACKAGES = ("api", "web")
WIRING = ("did_auth.services", "did_auth.cli", "did_auth.cli_keys", "did_auth.cli_sessions",
          "did_auth.__main__")
LIBRARIES_OUTSIDE_THE_CORE = (
    "fastapi",
    "starlette",
    "uvicorn",
    "redis",
    "web3",
    "eth_tester",
    "aiohttp",
    # The PKCS#11 binding: the core signs through the SigningBackend seam.
    "pkcs11",
    "asn1crypto",
)
CORE_MUST_NOT_IMPORT = (
    *LIBRARIES_OUTSIDE_THE_CORE,
    "did_auth.adapters",
    "did_auth.edge",
    *WIRING,
)
CONFIG_MAY_IMPORT = ("did_auth.config", "did_auth.core")
ADAPTERS_MUST_NOT_IMPORT = ("did_auth.edge", *WIRING)


def _module_name(path: Path, base: Path, package: str) -> str:
    parts = [package, *path.relative_to(base).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(base: Path, package: str) -> dict[str, Path]:
    return {
        _module_name(path, base, package): path
        for path in sorted(base.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _imports(name: str, path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(imported module, line, names imported from it) for every import in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno, [alias.name for alias in node.names]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


MODULES = _modules(PACKAGE, "did_auth")


def test_the_scan_sees_the_package() -> None:
    assert "did_auth.core.flows.siwe_login" in MODULES and "did_auth.core.ports.store" in MODULES
    assert any(_within(m, "did_auth.adapters.chain") for m in MODULES)


def test_the_top_level_is_the_layers_and_the_wiring() -> None:
    """A reader finds the architecture in the tree: one folder per layer."""
    layers = {
        "core": (*CORE_PACKAGES, "clock", "errors"),
        "adapters": ADAPTER_PACKAGES,
        "edge": EDGE_PACKAGES,
        "config": ("settings", "models", "check"),
    }
    for layer, members in layers.items():
        children = {m.split(".")[2] for m in MODULES if m.count(".") >= 2 and
                    m.split(".")[1] == layer}
        assert children == set(members), layer
    top = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    assert top == {*layers, "verifier", *(w.split(".")[1] for w in WIRING)}


def _violations(layer: str, banned: tuple[str, ...]) -> list[str]:
    found = []
    for name, path in MODULES.items():
        if not _within(name, layer):
            continue
        for target, line, names in _imports(name, path):
            # `from did_auth.adapters.store import redis` names did_auth.adapters.store.redis.
            candidates = [target, *(f"{target}.{n}" for n in names)]
            for module in candidates:
                if any(_within(module, b) for b in banned):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_the_core_imports_no_adapter_framework_or_http_edge() -> None:
    assert _violations("did_auth.core", CORE_MUST_NOT_IMPORT) == []


def test_the_rule_checker_sees_a_violation() -> None:
    assert _violations("did_auth.edge", ("did_auth.core",)) != []


def test_configuration_imports_only_the_core() -> None:
    found = []
    for name, path in MODULES.items():
        if not _within(name, "did_auth.config"):
            continue
        for target, line, _ in _imports(name, path):
            if _within(target, "did_auth") and not any(
                _within(target, ok) for ok in CONFIG_MAY_IMPORT
            ):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert found == []


def test_the_adapters_import_no_http_edge_or_wiring() -> None:
    assert _violations("did_auth.adapters", ADAPTERS_MUST_NOT_IMPORT) == []


def test_the_verifier_imports_nothing_from_the_server() -> None:
    verifier = _modules(VERIFIER, "did_auth_verifier")
    assert "did_auth_verifier.tokens" in verifier
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in verifier.items()
        for target, line, _ in _imports(name, path)
        if _within(target, "did_auth")
    ]
    assert violations == []


def _package(module: str) -> str:
    """did_auth.core.flows.login -> did_auth.core.flows; did_auth.services -> itself."""
    parts = module.split(".")
    depth = 3 if len(parts) > 2 and parts[1] in ("core", "adapters", "edge", "config") else 2
    return ".".join(parts[:depth])


def test_no_private_names_imported_across_packages() -> None:
    violations = []
    for name, path in MODULES.items():
        for target, line, names in _imports(name, path):
            if not _within(target, "did_auth") or _package(target) == _package(name):
                continue
            for imported in names:
                if imported.startswith("_") and not imported.startswith("__"):
                    violations.append(f"{path.relative_to(ROOT)}:{line} imports {target}.{imported}")
    assert violations == []


def _graph() -> dict[str, set[str]]:
    """did_auth module -> the did_auth modules importing it runs. Importing `a.b.c` also
    runs the `__init__` of `a.b` (unless the importer lives inside it: then it has run)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _, names in _imports(name, path):
            hits = [t for t in (target, *(f"{target}.{n}" for n in names)) if t in MODULES]
            for hit in hits:
                parts = hit.split(".")
                for depth in range(2, len(parts) + 1):
                    dep = ".".join(parts[:depth])
                    if dep in MODULES and dep != name and not _within(name, dep):
                        graph[name].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_did_auth_modules() -> None:
    assert _cycles(_graph()) == []
