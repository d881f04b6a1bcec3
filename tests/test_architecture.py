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
