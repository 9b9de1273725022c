"""The package's shape holds: no import cycles, tantivy only inside its backend, the api never reaching the daemon."""

from __future__ import annotations

import ast
from pathlib import Path

import logtraced

PACKAGE = Path(logtraced.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module of the package this file imports, at any level (TYPE_CHECKING and function bodies included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {target for target in imports_of(path) if target in modules and target != name}
            for name, path in modules.items()}  # fmt: skip


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_graph_sees_real_edges() -> None:
    """Guards the test above: an empty graph would have no cycles either."""
    edges = graph()
    assert "logtraced.model" in edges["logtraced.storage.wal"]
    assert "logtraced.storage.backend" in edges["logtraced.storage.tantivy.store"]


def test_model_is_a_leaf() -> None:
    assert graph()["logtraced.model"] == set()


def test_only_the_tantivy_backend_imports_tantivy() -> None:
    importers = {module_name(path) for path in PACKAGE.rglob("*.py") if "tantivy" in imports_of(path)}
    assert importers, "the tantivy backend imports tantivy"
    assert {name for name in importers if not name.startswith("logtraced.storage.tantivy")} == set()


def test_api_never_imports_the_daemon_and_storage_never_imports_ingest_or_api() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("logtraced.api"):
            assert "logtraced.daemon" not in targets, name
        if name.startswith("logtraced.storage"):
            assert not {t for t in targets if t.startswith(("logtraced.ingest", "logtraced.api"))}, name


SANS_IO_CODECS = ("framing", "msgpackstream", "forward", "beats", "syslog", "gelf")
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "uvloop", "aiohttp"}


def test_protocol_codecs_are_sans_io() -> None:
    """The wire codecs take bytes and give values; sockets and the loop belong to their `*_receiver` glue."""
    for name in SANS_IO_CODECS:
        imported = imports_of(PACKAGE / "ingest" / f"{name}.py")
        assert not {module.split(".")[0] for module in imported} & IO_MODULES, name
        assert not {m for m in imported if m.startswith(("logtraced.ingest.stream", "logtraced.ingest.datagram"))}, name


DELETIONS = {"delete_documents", "delete_documents_by_term", "delete_documents_by_query", "delete_all_documents"}


def test_events_are_never_deleted_from_a_partition() -> None:
    """Counts read from document frequencies (search._label_hits) hold only while nothing deletes a document.

    A deleted document still counts in its terms' frequencies; retention removes whole partitions instead.
    """
    calls = {
        (module_name(path), node.func.attr)
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DELETIONS
    }
    assert calls == set()
