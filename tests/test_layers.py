"""The package's layout: imports follow one declared order of stages, no module imports itself back,
every module is in the module tables, no function is longer than a screen, and ``import fer_utils``
stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fer_utils"

STAGES: tuple[tuple[str, ...], ...] = (
    ("fer_utils.constants", "fer_utils.extras"),
    ("fer_utils.paths", "fer_utils.files"),
    ("fer_utils.data",),
    ("fer_utils.model",),
    ("fer_utils.evaluate",),  # before train: the engine scores every epoch with it
    ("fer_utils.train",),
    ("fer_utils.plots", "fer_utils.report"),
    ("fer_utils.browser", "fer_utils.live"),
    ("fer_utils.reproduce", "fer_utils.realtime"),
    ("fer_utils",),  # the package's facade: the constants, and classify_image on first use
)
"""The pipeline's order. A module may import from an earlier stage, or from its own unit (the same
subpackage or top-level module); never from a later stage or from a sibling unit of its stage."""

MAX_FUNCTION_LINES = 80
MAX_TOP_LEVEL_MODULES = 10


def module_name(path: Path, root: Path) -> str:
    """``fer_utils/data/loading.py`` -> ``fer_utils.data.loading``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package_dir: Path) -> dict[str, Path]:
    return {module_name(p, package_dir.parent): p for p in sorted(package_dir.rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every import of a package module in ``path``, including those inside functions.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module, else of ``pkg``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    root = name.partition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == root]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in known else target))
    return found


def stage_of(name: str, stages: tuple[tuple[str, ...], ...]) -> tuple[int, str]:
    """(stage index, unit) of a module: the longest declared prefix that holds it."""
    best: tuple[int, str] | None = None
    for i, units in enumerate(stages):
        for unit in units:
            if (name == unit or name.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (i, unit)
    if best is None:
        raise LookupError(f"module {name} is in no declared stage")
    return best


def layer_violations(package_dir: Path, stages: tuple[tuple[str, ...], ...]) -> list[str]:
    """Every import that goes against ``stages``, and every import cycle, in words."""
    modules = package_modules(package_dir)
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    problems = []
    for name, path in modules.items():
        stage, unit = stage_of(name, stages)
        for line, target in imports_of(path, name, known):
            if target == name or target not in known:
                continue
            graph[name].add(target)
            t_stage, t_unit = stage_of(target, stages)
            if t_stage > stage or (t_stage == stage and t_unit != unit):
                rel = path.relative_to(package_dir.parent)
                problems.append(f"{rel}:{line}: {name} ({unit}) imports {target} ({t_unit}), against the stage order")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [group + [group[0]] for group in groups]


def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root / "fer_utils"


# --------------------------------------------------------------------------- the checker itself


def test_checker_accepts_imports_down_the_stage_order(tmp_path):
    pkg = write_package(
        tmp_path,
        {
            "fer_utils/__init__.py": "from fer_utils.constants import NAMES\n",
            "fer_utils/constants.py": "NAMES = ()\n",
            "fer_utils/files.py": "",
            "fer_utils/data/__init__.py": "from fer_utils.data.dataset import Data\n",
            "fer_utils/data/dataset.py": "from fer_utils import files\nfrom fer_utils.constants import NAMES\n",
            "fer_utils/train/__init__.py": "",
            "fer_utils/train/engine.py": "def fit():\n    from fer_utils.data import Data\n",
        },
    )
    assert layer_violations(pkg, STAGES) == []


def test_checker_reports_an_import_against_the_stage_order_inside_a_function(tmp_path):
    pkg = write_package(
        tmp_path,
        {
            "fer_utils/__init__.py": "",
            "fer_utils/data/__init__.py": "",
            "fer_utils/data/loading.py": "def load():\n    from fer_utils.train.engine import fit\n",
            "fer_utils/train/__init__.py": "",
            "fer_utils/train/engine.py": "def fit(): ...\n",
        },
    )
    (problem,) = layer_violations(pkg, STAGES)
    assert "fer_utils/data/loading.py:2" in problem
    assert "imports fer_utils.train.engine" in problem


def test_checker_reports_an_import_between_units_of_one_stage(tmp_path):
    pkg = write_package(
        tmp_path,
        {
            "fer_utils/__init__.py": "",
            "fer_utils/browser/__init__.py": "from ..live import detect\n",
            "fer_utils/live/__init__.py": "",
            "fer_utils/live/detect.py": "",
        },
    )
    (problem,) = layer_violations(pkg, STAGES)
    assert "fer_utils.browser (fer_utils.browser) imports fer_utils.live.detect" in problem


def test_checker_reports_a_module_importing_the_package_facade(tmp_path):
    pkg = write_package(
        tmp_path,
        {
            "fer_utils/__init__.py": "from fer_utils.constants import NAMES\n",
            "fer_utils/constants.py": "NAMES = ()\n",
            "fer_utils/data/__init__.py": "",
            "fer_utils/data/dataset.py": "from fer_utils import NAMES\n",
        },
    )
    (problem,) = layer_violations(pkg, STAGES)
    assert "fer_utils.data.dataset (fer_utils.data) imports fer_utils (fer_utils)" in problem


def test_checker_reports_a_cycle_inside_one_unit(tmp_path):
    pkg = write_package(
        tmp_path,
        {
            "fer_utils/__init__.py": "",
            "fer_utils/data/__init__.py": "",
            "fer_utils/data/a.py": "from fer_utils.data import b\n",
            "fer_utils/data/b.py": "def f():\n    from .a import g\n",
        },
    )
    assert layer_violations(pkg, STAGES) == ["import cycle: fer_utils.data.a -> fer_utils.data.b -> fer_utils.data.a"]


# --------------------------------------------------------------------------- the package


def test_every_module_of_the_package_is_in_a_declared_stage():
    for name in package_modules(PACKAGE):
        stage_of(name, STAGES)


def test_no_import_in_the_package_goes_against_the_stage_order_or_closes_a_cycle():
    assert layer_violations(PACKAGE, STAGES) == []


def test_the_top_level_holds_few_modules_and_the_stages_are_subpackages():
    top = [p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    subpackages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    assert {"data", "model", "train", "evaluate", "browser", "live"} <= set(subpackages)


def test_each_subpackage_re_exports_its_public_names_in_all():
    """``__all__`` lists names the ``__init__`` imports, or (``live``, light for Jupyter Server) maps in ``_LAZY``."""
    import importlib

    for init in PACKAGE.glob("*/__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        lazy: set[str] = set()
        for node in tree.body:
            target = node.target if isinstance(node, ast.AnnAssign) else None
            if target is not None and getattr(target, "id", "") == "_LAZY" and node.value is not None:
                lazy = set(ast.literal_eval(node.value))
        package = importlib.import_module(f"fer_utils.{init.parent.name}")
        exported = set(package.__all__)
        assert exported, f"{init} has an empty __all__"
        assert exported <= imported | lazy, f"{init}: __all__ names {sorted(exported - imported - lazy)} it lacks"
        for name in lazy:  # each lazily re-exported name resolves
            assert getattr(package, name) is not None


def module_table_names() -> list[str]:
    """Every module as the tables write it: ``data.loading``, ``plots`` (``__init__`` and ``__main__`` aside)."""
    return [
        name.removeprefix("fer_utils.")
        for name, path in package_modules(PACKAGE).items()
        if path.name not in ("__init__.py", "__main__.py")
    ]


def test_every_module_is_in_the_package_docstring_table():
    import fer_utils

    missing = [m for m in module_table_names() if f"``{m}``" not in (fer_utils.__doc__ or "")]
    assert missing == []


def test_every_module_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [m for m in module_table_names() if f"`{m}`" not in readme]
    assert missing == []


def test_no_function_in_the_package_is_longer_than_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                n = (node.end_lineno or node.lineno) - first + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


@pytest.mark.parametrize("module", ["fer_utils", "fer_utils.paths", "fer_utils.files", "fer_utils.constants"])
def test_importing_the_package_root_loads_no_heavy_library(module):
    code = (
        f"import sys, {module}\n"
        "heavy = sorted({'torch', 'timm', 'cv2', 'pandas', 'sklearn', 'matplotlib', 'ipywidgets'} & set(sys.modules))\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
