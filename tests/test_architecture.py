"""The layers of the project, read from its import statements (``ast``), as README "Architecture"
names them: transport -> one module per transaction -> actors and policy -> kernel and storage.

A package may import only packages of a lower layer (and peers the table below allows); no
import of a project package sits inside a function, where it would hide a cycle.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "xds": 0, "config": 0, "storage": 0,          # kernel (model, ebRIM, validation, SOAP codec), settings, engines
    "registry": 1, "audit": 1,                    # actors that know only the kernel and storage
    "repository": 2, "client": 2,                 # the repository registers with the registry; the client library
    "access": 3,                                  # the policy reads the registry's facts
    "transactions": 4,                            # one module per transaction
    "bindings": 5, "portal": 5,                   # doors: SOAP, JSON API, web portal
    "server": 6,                                  # composition root, CLI
}
"""Rank of each top-level package: an import must go to a strictly lower rank."""
ALLOWED_SAME_RANK: set[tuple[str, str]] = set()


def project_modules() -> Iterator[tuple[str, Path]]:
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield package, path


def imports_of(path: Path) -> Iterator[tuple[str, bool, int]]:
    """(imported top-level package, inside a function, line) for every import of ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import; name the package")
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in LAYERS:
                yield top, id(node) in in_function, node.lineno


def edges() -> list[tuple[str, str, Path, bool, int]]:
    return [(package, target, path, nested, line)
            for package, path in project_modules()
            for target, nested, line in imports_of(path) if target != package]


def test_every_top_level_package_has_a_layer():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_no_import_goes_up_or_sideways():
    wrong = [f"{path.relative_to(ROOT)}:{line}: {package} (layer {LAYERS[package]}) imports {target} "
             f"(layer {LAYERS[target]})"
             for package, target, path, _nested, line in edges()
             if LAYERS[target] >= LAYERS[package] and (package, target) not in ALLOWED_SAME_RANK]
    assert wrong == []


def test_no_package_cycle():
    graph: dict[str, set[str]] = {}
    for package, target, *_ in edges():
        graph.setdefault(package, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [p for p in graph if reaches(p, p, {p})] == []


def test_no_project_import_inside_a_function():
    hidden = [f"{path.relative_to(ROOT)}:{line}: imports {target} inside a function"
              for package, path in project_modules()
              for target, nested, line in imports_of(path) if nested]
    assert hidden == []


def test_the_kernel_knows_nothing_of_sql_or_http_frameworks():
    """The model and the SOAP codec stay free of storage: ``xds`` imports no SQLAlchemy."""
    offenders = []
    for path in sorted((ROOT / "xds").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                          if n.split(".")[0] in ("sqlalchemy", "alembic", "psycopg", "gunicorn")]
    assert offenders == []
