"""The house rules of issues 10 and 22, checked on the code itself: small modules and functions, the core never
imports a built-in plugin, no import circle in ``oodbench/``, and the stage subpackages import only the ones
below them (imports inside functions count; ``if TYPE_CHECKING:`` blocks do not, they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "oodbench"
SOURCES = sorted([*CORE.rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "plugins":
        parts = parts[1:] if parts[1] == "oodbench_builtins" else parts[2:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules ``tree`` imports at run time (relative imports resolved)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def test_modules_and_functions_are_small_and_lines_short():
    problems = []
    for path in SOURCES:
        text = path.read_text()
        lines = text.splitlines()
        rel = path.relative_to(ROOT)
        if len(lines) > 300:
            problems.append(f"{rel}: {len(lines)} lines (> 300)")
        problems += [f"{rel}:{i}: {len(line)} characters (> 120)" for i, line in enumerate(lines, 1) if len(line) > 120]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                if body and body[-1].end_lineno - body[0].lineno + 1 > 60:
                    problems.append(
                        f"{rel}:{node.lineno}: {node.name} body is {body[-1].end_lineno - body[0].lineno + 1}"
                        " lines (> 60)"
                    )
    assert not problems, "\n".join(problems)


def test_core_never_imports_the_builtin_plugins():
    offenders = [
        str(p.relative_to(ROOT))
        for p in CORE.rglob("*.py")
        if any(
            m.startswith("oodbench_builtins")
            for m in _runtime_imports(ast.parse(p.read_text()), _module_name(p), p.name == "__init__.py")
        )
    ]
    assert not offenders, offenders


def test_no_import_circle_in_the_core():
    files = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        imported = _runtime_imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        graph[name] = {m for m in imported if m in files and m != name and not name.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


#: each stage subpackage of ``oodbench/`` and the ones it may import (its own always); the README's
#: "Architecture" section draws the same picture
BELOW = {
    "core": set(),
    "data": {"core"},
    "records": {"core"},
    "models": {"core", "data"},
    "plugins": {"core", "data", "records", "models"},
    "pipeline": {"core", "data", "records", "models", "plugins"},
    "report": {"core", "records"},
    "suites": {"core", "data", "records", "models", "plugins", "pipeline", "report"},
    "api": {"core", "data", "records", "models", "plugins", "pipeline", "report"},
    "cli": {"core", "data", "records", "models", "plugins", "pipeline", "report", "suites", "api"},
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "oodbench" and parts[1] in BELOW else None


def upward_imports() -> list[str]:
    """``importer -> imported`` for every import from a stage to one that is not below it."""
    found = []
    for path in CORE.rglob("*.py"):
        name = _module_name(path)
        stage = _stage(name)
        if stage is None:
            continue
        for imported in _runtime_imports(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            target = _stage(imported)
            if target is not None and target != stage and target not in BELOW[stage]:
                found.append(f"{name} ({stage}) -> {imported} ({target})")
    return sorted(found)


def test_the_tree_is_the_stages():
    """Every module of ``oodbench/`` lives in a stage subpackage, except the public face and its helpers."""
    top = sorted(p.name for p in CORE.iterdir() if p.suffix == ".py")
    folders = sorted(p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert top == ["__init__.py", "__main__.py", "_compat.py"]
    assert folders == sorted(BELOW)


def test_no_stage_imports_a_higher_one():
    assert not upward_imports(), "\n".join(upward_imports())


def test_the_direction_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The check above can fail: a data module that imports the report is reported."""
    fake = tmp_path / "oodbench"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "leak.py").write_text("from oodbench.report.tables import label\n")
    monkeypatch.setattr(__import__(__name__), "CORE", fake)
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert "oodbench.data.leak (data) -> oodbench.report.tables (report)" in upward_imports()
