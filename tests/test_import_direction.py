"""Dependencies inside ``rar`` point one way: shared types (``rar.core``) at the bottom, the models
(``lqa``, ``uir``, ``conditioning``, ``data``, ``degradations``) above them, then ``pipeline``, then
``baselines`` and ``eval``, then ``training`` and ``perf``. Read from the source with ``ast`` (imports
inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RAR = Path(__file__).resolve().parents[1] / "rar"

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "rar.core": ("rar.",),  # imports nothing of rar but itself (checked below)
    "rar.utils": ("rar.pipeline", "rar.baselines", "rar.eval", "rar.training", "rar.perf"),
    "rar.degradations": ("rar.pipeline", "rar.baselines", "rar.eval", "rar.training", "rar.perf"),
    "rar.data": ("rar.pipeline", "rar.baselines", "rar.eval", "rar.training", "rar.perf"),
    "rar.conditioning": ("rar.pipeline", "rar.baselines", "rar.eval", "rar.training", "rar.perf", "rar.testing"),
    "rar.lqa": ("rar.pipeline", "rar.baselines", "rar.eval", "rar.training", "rar.perf", "rar.testing"),
    "rar.uir": ("rar.pipeline", "rar.baselines", "rar.eval", "rar.training", "rar.perf", "rar.testing"),
    "rar.pipeline": ("rar.baselines", "rar.eval", "rar.training", "rar.perf", "rar.testing"),
    "rar.baselines": ("rar.eval", "rar.training", "rar.perf", "rar.testing"),
    "rar.eval": ("rar.pipeline", "rar.baselines", "rar.training", "rar.perf", "rar.testing"),
    "rar.training": ("rar.pipeline", "rar.baselines", "rar.eval", "rar.perf", "rar.testing"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(RAR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` / ``from ... import`` statement of ``source`` names (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(module: str, imports: set[str]) -> list[str]:
    """The imports of ``module`` that go against :data:`FORBIDDEN`."""
    package = next((p for p in FORBIDDEN if module == p or module.startswith(p + ".")), None)
    if package is None:
        return []
    found = []
    for name in sorted(imports):
        if package == "rar.core":
            if (name == "rar" or name.startswith("rar.")) and not name.startswith("rar.core"):
                found.append(f"{module} imports {name}")
        elif any(name == f or name.startswith(f + ".") or (f.endswith(".") and name.startswith(f))
                 for f in FORBIDDEN[package]):
            found.append(f"{module} imports {name}")
    return found


def test_the_checker_finds_a_forbidden_import():
    source = "import torch\n\ndef f():\n    from rar.eval.method import Method\n    return Method\n"
    assert violations("rar.pipeline.pipeline", imported_modules(source)) == [
        "rar.pipeline.pipeline imports rar.eval.method"]
    assert violations("rar.core.outputs", imported_modules("from rar.pipeline import RARPipeline")) != []
    assert violations("rar.eval.harness", imported_modules("from rar.core.timing import synchronize")) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    files = sorted((RAR / package.removeprefix("rar.").replace(".", "/")).rglob("*.py"))
    assert files, f"no sources for {package}"
    found = [v for f in files for v in violations(module_name(f), imported_modules(f.read_text()))]
    assert not found, "\n".join(found)
