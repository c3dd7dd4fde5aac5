"""Dependencies point one way (docs/architecture.md, "Dependencies point one way").

Every module of the package is parsed with :mod:`ast` (nothing is imported), its imports of the
package are collected, relative ones and ``from . import x`` included, wherever they are (inside a
function, under ``if TYPE_CHECKING``), and each edge must point to a layer that the importing
module's layer may use. A failure names every offending edge, with its file and line.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "asgi_chat"

# Top-level modules, by layer; a folder is its own layer. A new module must be placed here.
TOP_LEVEL = {
    PACKAGE: "composition",
    f"{PACKAGE}.composition": "composition",
    f"{PACKAGE}.context": "composition",
    f"{PACKAGE}.cli": "composition",
    f"{PACKAGE}.__main__": "composition",
    f"{PACKAGE}.publish": "ops",  # publishing from a task or a cron job: engine/ and ops/ settings
    f"{PACKAGE}.testing": "testing",  # a tool for any ASGI app: it stands alone, like asgi/
}
FOLDERS = ("asgi", "engine", "endpoints", "web", "ops", "identity", "client")

# Layer -> the layers it may import (its own always). web/ and ops/ sit side by side: neither
# imports the other. identity/ (who is speaking) imports nothing of the package, like asgi/, so
# every layer above the lesson may use it.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "composition": frozenset({"composition", "web", "ops", "endpoints", "engine", "identity", "asgi", "testing"}),
    "web": frozenset({"endpoints", "engine", "identity", "asgi"}),
    "ops": frozenset({"endpoints", "engine", "identity", "asgi"}),
    "endpoints": frozenset({"engine", "identity", "asgi"}),
    "engine": frozenset({"identity", "asgi"}),
    "identity": frozenset(),
    # The Python client talks to a server over the network like any client: of the package it
    # reads only the protocol's constants (endpoints/protocol.py).
    "client": frozenset({"endpoints"}),
    "asgi": frozenset(),
    "testing": frozenset(),
}

# Edges known to point the wrong way, each with the work that removes it. Kept only while the
# edge exists (test_every_known_exception_still_exists), so the list can only shrink.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        source, target = layer_of(self.importer), layer_of(self.imported)
        allowed = f"only {', '.join(sorted(MAY_IMPORT[source]))}" if MAY_IMPORT[source] else "nothing of the package"
        return (
            f"{self.path}:{self.line}: {self.importer} ({source}) imports {self.imported} ({target});"
            f" {source} may import {allowed}"
        )


def package_root() -> Path:
    """Where ``asgi_chat`` is found, without importing it (PYTHONPATH may point at another checkout)."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None, f"{PACKAGE} is not importable"
    assert spec.submodule_search_locations, f"{PACKAGE} is not a package"
    return Path(next(iter(spec.submodule_search_locations)))


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported_modules(source: str, module: str, is_package: bool, known: set[str]) -> Iterator[tuple[str, int]]:
    """(module of the package imported, line) for each import in ``source``, the module ``module``.

    ``from X import name`` is an import of ``X.name`` when that is a module (``from . import
    frames``), else of ``X`` (``from .fanout import Member``).
    """
    here = module.split(".") if is_package else module.split(".")[:-1]  # what "." means
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in known else target), node.lineno


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in FOLDERS:
        return parts[1]
    assert module in TOP_LEVEL, f"{module} belongs to no layer: place it in TOP_LEVEL here and in docs/architecture.md"
    return TOP_LEVEL[module]


def edges(root: Path) -> list[Edge]:
    """Every import of the package by the package, once per module and line."""
    found = modules(root)
    known = set(found)
    every = (
        Edge(name, imported, path, line)
        for name, path in found.items()
        for imported, line in imported_modules(path.read_text(), name, path.name == "__init__.py", known)
    )
    return list(dict.fromkeys(every))


def wrong_way(edge: Edge) -> bool:
    source, target = layer_of(edge.importer), layer_of(edge.imported)
    return target != source and target not in MAY_IMPORT[source]


def test_every_import_points_down_the_layers() -> None:
    offending = [edge for edge in edges(package_root()) if wrong_way(edge)]
    unknown = [edge for edge in offending if (edge.importer, edge.imported) not in KNOWN]
    if unknown:
        pytest.fail("imports against the layering:\n" + "\n".join(str(edge) for edge in unknown), pytrace=False)


def test_asgi_imports_nothing_of_the_package() -> None:
    """The lesson reads alone: the standard library and asgiref only (the rule above, said plainly)."""
    outside = [
        edge
        for edge in edges(package_root())
        if layer_of(edge.importer) == "asgi" and layer_of(edge.imported) != "asgi"
    ]
    if outside:
        pytest.fail(
            "asgi/ imports the rest of the package:\n" + "\n".join(str(edge) for edge in outside), pytrace=False
        )


def test_every_known_exception_still_exists() -> None:
    present = {(edge.importer, edge.imported) for edge in edges(package_root()) if wrong_way(edge)}
    for (importer, imported), why in KNOWN.items():
        assert (importer, imported) in present, f"{importer} -> {imported} is gone ({why}): remove it from KNOWN"


def test_every_module_has_a_layer() -> None:
    for name in modules(package_root()):
        assert layer_of(name) in MAY_IMPORT


KNOWN_MODULES = {
    "asgi_chat",
    "asgi_chat.engine",
    "asgi_chat.engine.frames",
    "asgi_chat.engine.stores",
    "asgi_chat.engine.stores.memory",
    "asgi_chat.ops.metrics",
}


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("from . import frames", "asgi_chat.engine.rooms", False, ["asgi_chat.engine.frames"]),
        # A name that is not a module is an import of the module it comes from.
        ("from . import StoreListener", "asgi_chat.engine.stores.memory", False, ["asgi_chat.engine.stores"]),
        ("from .. import frames", "asgi_chat.engine.stores.memory", False, ["asgi_chat.engine.frames"]),
        ("from ...ops.metrics import Metrics", "asgi_chat.engine.stores.memory", False, ["asgi_chat.ops.metrics"]),
        ("from .. import create_app", "asgi_chat.ops.cli", False, ["asgi_chat"]),
        # In a package's __init__.py, "." is the package itself.
        ("from .memory import MemoryStore", "asgi_chat.engine.stores", True, ["asgi_chat.engine.stores.memory"]),
        ("from . import memory", "asgi_chat.engine.stores", True, ["asgi_chat.engine.stores.memory"]),
        # Wherever the import is: inside a function, under TYPE_CHECKING.
        (
            "def f(): from .memory import MemoryStore",
            "asgi_chat.engine.stores",
            True,
            ["asgi_chat.engine.stores.memory"],
        ),
        (
            "if TYPE_CHECKING: from ..ops.metrics import Metrics",
            "asgi_chat.engine.hub",
            False,
            ["asgi_chat.ops.metrics"],
        ),
        ("import asgi_chat.ops.metrics", "asgi_chat.engine.fanout", False, ["asgi_chat.ops.metrics"]),
        ("from asgi_chat.engine import frames", "asgi_chat.web.endpoints", False, ["asgi_chat.engine.frames"]),
        # Outside the package: not an edge.
        ("import asyncio\nfrom asgiref.typing import Scope", "asgi_chat.asgi.app", False, []),
        ("from __future__ import annotations", "asgi_chat.asgi.app", False, []),
    ],
)
def test_imports_are_resolved_to_modules(source: str, module: str, is_package: bool, expected: list[str]) -> None:
    assert [name for name, _ in imported_modules(source, module, is_package, KNOWN_MODULES)] == expected
