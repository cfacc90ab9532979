"""What the code imports is what requirements.txt names: imported directly => named there.

Every top-level import in the project's Python (``import x``, ``from x import y``; stdlib, drdrill
and the project's own test and script modules aside) is mapped to the distribution that
installs it. A distribution counts as named when requirements.txt names it, or when a named one
pins it exactly (``apache-airflow`` is ``apache-airflow-core==`` plus ``apache-airflow-task-sdk==``
of the same release): a dependency that merely comes along (boto3 with the amazon provider,
SQLAlchemy with Airflow) can change or go away under us, so it is named. An import guarded by
``except ImportError`` is an optional feature: it may be missing, but if it is installed, it is
named like the rest.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("include", "dags", "tests", "bench", "scripts", "plugins")
FIRST_PARTY = {"drdrill"}
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==\s*([^\s;#]+))?")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python_files() -> list[Path]:
    return sorted(p for d in SCANNED if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in types)


def imports() -> dict[str, dict]:
    """module -> {"files": {...}, "optional": bool} for every absolute import in the project."""
    found: dict[str, dict] = {}

    def visit(node: ast.AST, path: Path, guarded: bool) -> None:
        if isinstance(node, ast.Try):
            inner = guarded or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, path, inner)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, path, guarded)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            rec = found.setdefault(name, {"files": set(), "optional": False})
            rec["files"].add(str(path.relative_to(ROOT)))
            rec["optional"] |= guarded
        for child in ast.iter_child_nodes(node):
            visit(child, path, guarded)

    for path in _python_files():
        visit(ast.parse(path.read_text(), str(path)), path, False)
    return found


def local_names() -> set[str]:
    """Modules and packages of the project itself (``tests``, ``integration.helpers``, ...)."""
    names = set(SCANNED)
    for path in _python_files():
        rel = path.relative_to(ROOT)
        names.update(rel.parts[:-1])
        names.add(path.stem)
    return names


@cache
def _top_level_distributions() -> dict[str, list[str]]:
    return packages_distributions()


@cache
def _files_of(dist: str) -> frozenset[str]:
    return frozenset(str(f) for f in distribution(dist).files or ())


def owner(module: str) -> str | None:
    """The installed distribution that provides ``module`` (None: not installed)."""
    top = module.split(".")[0]
    dists = sorted(set(_top_level_distributions().get(top, [])))
    if len(dists) <= 1:
        return dists[0] if dists else None
    # A namespace several distributions share (airflow): the one that holds this very module.
    rel = module.replace(".", "/")
    return next((d for d in dists if {f"{rel}.py", f"{rel}/__init__.py"} & _files_of(d)), None)


def requirement_pins(path: Path) -> dict[str, str | None]:
    pins: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and (m := NAME.match(line)):
            pins[canonical(m.group(1))] = m.group(4)
    return pins


def named_distributions() -> set[str]:
    """requirements.txt, plus what a named distribution pins exactly (parts of the same release)."""
    named = set(requirement_pins(ROOT / "requirements.txt"))
    todo = list(named)
    while todo:
        try:
            requires = distribution(todo.pop()).requires or []
        except PackageNotFoundError:
            continue
        for req in requires:
            m = NAME.match(req)
            if m and m.group(4) and ";" not in req and canonical(m.group(1)) not in named:
                named.add(canonical(m.group(1)))
                todo.append(canonical(m.group(1)))
    return named


def third_party_imports() -> dict[str, dict]:
    local = local_names()
    out = {}
    for module, rec in imports().items():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in FIRST_PARTY:
            continue
        if top in local and top not in _top_level_distributions():
            continue
        out[module] = rec
    return out


def test_the_scan_finds_what_the_project_is_known_to_import():
    found = third_party_imports()
    assert {"yaml", "pydantic", "psycopg", "great_expectations", "airflow.sdk", "pytest"} <= set(found)
    assert "airflow.providers.slack.notifications.slack" in found
    assert found["airflow.providers.slack.notifications.slack"]["optional"]
    assert not found["psycopg"]["optional"]
    assert not {m for m in found if m.split(".")[0] in ("drdrill", "integration", "tests", "os", "json")}


def test_every_direct_import_is_named_in_requirements_txt():
    named = named_distributions()
    problems = []
    for module, rec in sorted(third_party_imports().items()):
        where = ", ".join(sorted(rec["files"])[:3])
        dist = owner(module)
        if dist is None:
            if not rec["optional"]:
                problems.append(f"{module} (in {where}) is imported but installed by no distribution")
            continue
        if canonical(dist) not in named:
            version = distribution(dist).version
            problems.append(f"{module} (in {where}) comes from {dist} {version}, which requirements.txt does "
                            f"not name: add `{dist}=={version}` (and keep constraints.txt in step)")
    assert not problems, "\n".join(problems)


def test_requirements_pins_are_what_is_installed_and_what_constraints_pin():
    constraints = requirement_pins(ROOT / "constraints.txt")
    problems = []
    for name, pin in requirement_pins(ROOT / "requirements.txt").items():
        assert pin, f"{name}: requirements.txt pins every distribution exactly (name==version)"
        try:
            installed = distribution(name).version
        except PackageNotFoundError:
            installed = None
        if installed != pin:
            problems.append(f"{name}: requirements.txt pins {pin}, the venv has {installed} (run `make install`)")
        # pip freeze (constraints.txt) leaves out pip, setuptools and wheel.
        if name not in ("pip", "setuptools", "wheel") and constraints.get(name) != pin:
            problems.append(f"{name}: requirements.txt pins {pin}, constraints.txt {constraints.get(name)}")
    assert not problems, "\n".join(problems)
