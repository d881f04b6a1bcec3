"""Mutation testing for the modules where a silent change costs users most (issue 17).

Run by hand (``make mutation``), never by ``make test``. For each target module the runner

1. runs the module's mapped fast tests once on an unmutated copy of ``src/`` with a line tracer, to
   learn which lines of the module those tests execute (and how long they take);
2. enumerates single-point mutants with ast-based operators: comparison flips (``<`` <-> ``<=``,
   ``==`` <-> ``!=``, ...), ``and`` <-> ``or``, arithmetic swaps (``+`` <-> ``-``, ``*`` <-> ``/``,
   ``**`` -> ``*``), removed unary minus / ``not``, constant tweaks (0 <-> 1, n -> n + 1,
   x -> 2x, True <-> False), swapped adjacent positional call arguments, dropped keyword arguments,
   removed call statements;
3. applies each mutant to a private copy of the source tree (a temporary directory; the worktree is
   never written) and runs, ``-x -m "not slow"``, only the mapped tests that execute the mutated line
   (all of them for a line also run at import time), with a per-mutant timeout.

A mutant on a line the mapped tests never execute is reported as ``survived (not covered)`` without a
run. Docstrings, f-strings / string constants, annotations and lines marked ``# pragma: no mutate``
are not mutated. A mutant whose test run fails, errors or times out is killed.

    python tools/mutation.py                      # every target
    python tools/mutation.py --only train/dpo.py  # one module (repeatable)
    python tools/mutation.py --sample 40 --seed 1 # at most 40 mutants per module, chosen at random
    python tools/mutation.py --list               # the targets and their tests

Output: per module ``killed / total``, every survivor (file:line, operator, source line), and a JSON
file with everything (``--json``, default ``mutation-results.json``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "src/rlhfops"
PYTEST = [
    sys.executable,
    "-m",
    "pytest",
    "-x",
    "-q",
    "-p",
    "no:cacheprovider",
    "-m",
    "not slow",
    "--no-header",
]

# module (relative to src/rlhfops) -> the fast tests that should kill its mutants
TARGETS: dict[str, list[str]] = {  # fastest tests first, so a time-boxed run covers the most modules
    "gate/thresholds.py": [
        "tests/gate/test_gate_thresholds.py",
        "tests/gate/test_gate_limit_edges.py",
        "tests/gate/test_gate_thresholds_edges.py",
    ],
    # not tests/web/annotate/test_web_access.py: it drives the whole app on SQLite and PostgreSQL (34
    # tests; >15 min traced on the loaded 2-core machine); test_web_auth_edges.py executes every line of
    # web/auth.py that has a mutant with plain Starlette requests over a real workspace (8 s traced)
    "web/auth.py": ["tests/web/test_web_roles.py", "tests/web/test_web_auth_edges.py"],
    "web/deps.py": ["tests/web/test_web_deps.py", "tests/web/test_web_roles.py"],
    "web/sessions.py": ["tests/web/test_web_roles.py", "tests/web/annotate/test_web_security.py"],
    "measures/intervals.py": [
        "tests/measures/test_intervals.py",
        "tests/monitor/test_monitor_business_edges.py",
        "tests/evaluate/test_evaluate_stats_edges.py",
    ],
    "measures/diversity.py": ["tests/measures/test_diversity.py"],
    "measures/refusal.py": ["tests/measures/test_refusal.py"],
    "gate/provenance.py": ["tests/gate/test_gate_provenance.py"],
    "monitor/business.py": [
        "tests/monitor/test_monitor_business.py",
        "tests/monitor/test_monitor_business_edges.py",
    ],
    "evaluate/stats.py": [
        "tests/evaluate/test_evaluate_stats.py",
        "tests/evaluate/test_evaluate_stats_edges.py",
    ],
    "train/kl.py": ["tests/train/test_kl.py", "tests/train/test_kl_edges.py"],
    "monitor/drift.py": [
        "tests/monitor/test_monitor_drift_math.py",
        "tests/monitor/test_monitor_drift_rule.py",
        "tests/monitor/test_monitor_drift_config.py",
        "tests/monitor/test_monitor_drift_edges.py",
    ],
    "annotate/agreement.py": [
        "tests/annotate/test_annotate_agreement.py",
        "tests/annotate/test_annotate_agreement_reference.py",
        "tests/annotate/test_annotate_agreement_edges.py",
    ],
    "train/losses.py": [
        "tests/train/test_preference_losses.py",
        "tests/train/test_token_losses.py",
        "tests/train/test_packing_placement.py",
        "tests/train/test_math_edges.py",
        "tests/train/test_losses_edges.py",
    ],
    "train/rl_math.py": [
        "tests/train/test_rl_math.py",
        "tests/train/test_math_edges.py",
        "tests/train/test_rl_math_edges.py",
    ],
    "gate/decide.py": [
        "tests/gate/test_gate_decide.py",
        "tests/gate/test_gate_limit_edges.py",
        "tests/gate/test_gate_identity.py",
        "tests/gate/test_gate_provenance.py",
        "tests/gate/test_gate_choose.py",  # gate_choose (added after session 4's run)
    ],
    "train/reward.py": ["tests/train/test_reward_wiring.py"],
    "train/dpo.py": ["tests/train/test_dpo_wiring.py", "tests/train/test_dpo_loss_registry.py"],
    "train/loss_registry.py": ["tests/train/test_dpo_loss_registry.py", "tests/train/test_dpo_wiring.py"],
    "train/ppo_rollout.py": ["tests/train/test_ppo_wiring.py"],
    "train/ppo_update.py": ["tests/train/test_ppo_wiring.py", "tests/train/test_ppo_data_parallel.py"],
}

CMP_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult}


@dataclass
class Mutant:
    module: str
    index: int  # position in the module's enumeration (stable for a given source)
    line: int
    op: str
    source: str
    status: str = "pending"  # killed | survived | not covered | timeout (killed)
    seconds: float = 0.0  # wall-clock
    tests: list[str] = field(default_factory=list)  # the tests run against it
    cpu_seconds: float = 0.0  # CPU (user + system) of the test run


@dataclass
class ModuleResult:
    module: str
    tests: list[str]
    baseline_seconds: float = 0.0  # wall-clock of the untraced baseline
    total: int = 0
    sampled: int = 0
    mutants: list[Mutant] = field(default_factory=list)
    baseline_cpu_seconds: float = 0.0  # CPU (user + system) of the untraced baseline


# --------------------------------------------------------------------------------------------------
# Enumerating and applying mutants
# --------------------------------------------------------------------------------------------------


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, f-strings, annotations (and everything inside them)."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                mark(a.annotation)
            if node.args.vararg:
                mark(node.args.vararg.annotation)
            if node.args.kwarg:
                mark(node.args.kwarg.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.Raise):
            mark(node.exc)  # the message of an error is not maths; the condition that raises it is
    return skip


def _const_variant(value: object) -> object | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return {0: 1, 1: 0}.get(value, value + 1)
    if isinstance(value, float):
        return 1.0 if value == 0 else value * 2
    return None


def _sites(tree: ast.AST, lines: list[str]) -> list[tuple[ast.AST, str, object]]:
    """Every (node, operator name, detail) mutation site, in a deterministic order."""
    skip = _skipped_nodes(tree)
    out: list[tuple[ast.AST, str, object]] = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        if "pragma: no mutate" in lines[node.lineno - 1]:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in CMP_SWAP:
                    out.append((node, f"{type(op).__name__}->{CMP_SWAP[type(op)].__name__}", i))
        elif isinstance(node, ast.BoolOp):
            out.append((node, "and->or" if isinstance(node.op, ast.And) else "or->and", None))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BIN_SWAP:
            out.append((node, f"{type(node.op).__name__}->{BIN_SWAP[type(node.op)].__name__}", None))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            out.append((node, f"drop {type(node.op).__name__}", None))
        elif isinstance(node, ast.Constant) and _const_variant(node.value) is not None:
            out.append((node, f"const {node.value!r}->{_const_variant(node.value)!r}", None))
        elif isinstance(node, ast.Call):
            pos = [a for a in node.args if not isinstance(a, ast.Starred)]
            if len(pos) == len(node.args):
                for i in range(len(pos) - 1):
                    out.append((node, f"swap args {i},{i + 1}", i))
            for i, kw in enumerate(node.keywords):
                if kw.arg is not None:
                    out.append((node, f"drop kwarg {kw.arg}", i))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            out.append((node, "remove call", None))
    return out


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.AST, op: str, detail: object) -> None:
        self.target, self.op, self.detail = target, op, detail

    def generic_visit(self, node: ast.AST) -> ast.AST:
        node = super().generic_visit(node)
        if node is not self.target:
            return node
        op, d = self.op, self.detail
        if isinstance(node, ast.Compare):
            node.ops[d] = CMP_SWAP[type(node.ops[d])]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, (ast.BinOp, ast.AugAssign)):
            node.op = BIN_SWAP[type(node.op)]()
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant):
            node.value = _const_variant(node.value)
        elif isinstance(node, ast.Call) and op.startswith("swap"):
            node.args[d], node.args[d + 1] = node.args[d + 1], node.args[d]
        elif isinstance(node, ast.Call) and op.startswith("drop kwarg"):
            del node.keywords[d]
        elif isinstance(node, ast.Expr):
            return ast.Pass()
        return node


def enumerate_mutants(module: str, text: str) -> list[Mutant]:
    lines = text.splitlines()
    tree = ast.parse(text)
    return [
        Mutant(module, i, node.lineno, op, lines[node.lineno - 1].strip())
        for i, (node, op, _d) in enumerate(_sites(tree, lines))
    ]


def mutated_source(text: str, index: int) -> str:
    tree = ast.parse(text)
    node, op, detail = _sites(tree, text.splitlines())[index]
    new = ast.fix_missing_locations(_Apply(node, op, detail).visit(tree))
    return ast.unparse(new) + "\n"


# --------------------------------------------------------------------------------------------------
# Running tests against a private copy of the source
# --------------------------------------------------------------------------------------------------

TRACER = """
import json, os, sys, threading, atexit
_target = os.environ["MUTATION_TRACE_FILE"]
_out = os.environ["MUTATION_TRACE_OUT"]
_hit = {}  # line -> the tests (file::function, parameters dropped) that execute it; "" = at import
def _current():
    t = os.environ.get("PYTEST_CURRENT_TEST", "")
    return t.rsplit(" (", 1)[0].split("[", 1)[0] if t else ""
def _global(frame, event, arg):
    if frame.f_code.co_filename != _target:
        return None
    test = _current()
    _hit.setdefault(frame.f_lineno, set()).add(test)
    def _local(frame, event, arg):
        if event == "line":
            _hit.setdefault(frame.f_lineno, set()).add(test)
        return _local
    return _local
sys.settrace(_global)
threading.settrace(_global)
atexit.register(
    lambda: open(_out, "w").write(json.dumps({str(k): sorted(v) for k, v in _hit.items()}))
)
"""


def _env(copy_root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(copy_root / "src"), old] if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


PREIMPORT = [
    "numpy",
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "scipy",
    "sklearn",
    "pydantic",
    "fastapi",
    "sqlalchemy",
    "hypothesis",
    "yaml",
    "_pytest",
    "pytest",
]


def _status(code: int) -> str:
    """pytest's exit code as a mutant status: 0 passed, 1 failed (2 interrupted, 3 internal error, 99
    the child raised) kill; 4 (usage error) and 5 (no test collected) mean the selection was wrong."""
    return {0: "survived", 4: "selection", 5: "selection"}.get(code, "killed")


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system, with its waited-for children) a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _run_forked(tests: list[str], copy_root: Path, timeout: float) -> tuple[str, float, float]:
    """Run pytest in a forked child of this process, whose heavy third-party imports are already done
    (torch, transformers, ...); only rlhfops is imported afresh, from the mutated copy.

    ``timeout`` is in CPU seconds of the child (a mutant that loops forever burns CPU), so that a
    shared, loaded machine, where a child may wait far longer for a core than it computes, cannot turn
    a slow run into a "timeout" kill; a child that sleeps instead (a deadlock) is stopped after a
    generous wall-clock limit of 20 x ``timeout`` + 300 s. Returns (status, wall s, CPU s)."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(ROOT)
            os.environ.update(_env(copy_root))
            sys.path.insert(0, str(copy_root / "src"))
            import pytest

            code = pytest.main([*PYTEST[3:], *tests])
            os._exit(int(code))
        except BaseException:  # noqa: BLE001 - any failure in the child is a failed run
            os._exit(99)
    wall_limit = 20 * timeout + 300
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        cpu = _cpu_of(pid)
        if cpu > timeout or time.monotonic() - t0 > wall_limit:
            os.kill(pid, 9)
            _, _, usage = os.wait4(pid, 0)
            return "timeout", time.monotonic() - t0, usage.ru_utime + usage.ru_stime
        time.sleep(0.2)
    cpu = usage.ru_utime + usage.ru_stime
    return _status(os.waitstatus_to_exitcode(status)), time.monotonic() - t0, cpu


FORK: dict[str, Path | None] = {"copy_root": None}


def _preimport(copy_root: Path, tests: list[str]) -> None:
    """Import in this process, before forking, every third-party module the tests' collection imports
    (learned in a throwaway forked child) and pytest's plugins; the children then only import rlhfops
    and the test files. Nothing under the worktree or the copy (rlhfops, tests, helpers) is imported."""
    import importlib
    from importlib.metadata import entry_points

    names = [*PREIMPORT, *(e.value.split(":")[0] for e in entry_points(group="pytest11"))]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "modules.json"
        pid = os.fork()
        if pid == 0:  # child: collect, then list what got imported
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                os.chdir(ROOT)
                sys.path.insert(0, str(copy_root / "src"))
                import pytest

                pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *tests])
                local = (str(ROOT), str(copy_root))
                mods = [
                    n
                    for n, m in list(sys.modules.items())
                    if getattr(m, "__file__", None)
                    and not str(Path(m.__file__).resolve()).startswith(local)
                    and not n.startswith(("rlhfops", "__main__"))
                ]
                out.write_text(json.dumps(mods))
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        os.waitpid(pid, 0)
        if out.exists():
            names += json.loads(out.read_text())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that cannot be pre-imported is imported by the child
            pass
    if "rlhfops" in sys.modules or any(n.startswith("rlhfops.") for n in sys.modules):
        raise SystemExit("the runner must not import the code under test before forking")


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run(tests: list[str], env: dict[str, str], timeout: float) -> tuple[str, float, float]:
    """(status, wall s, CPU s). Forked: ``timeout`` is CPU seconds (see :func:`_run_forked`); a fresh
    interpreter (``--no-fork``, and the traced baseline): wall-clock seconds."""
    if FORK["copy_root"] is not None and "MUTATION_TRACE_FILE" not in env:
        return _run_forked(tests, FORK["copy_root"], timeout)
    t0, c0 = time.monotonic(), _children_cpu()
    try:
        proc = subprocess.run(
            [*PYTEST, *tests], cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, _children_cpu() - c0
    return _status(proc.returncode), time.monotonic() - t0, _children_cpu() - c0


def baseline(copy_root: Path, module: str, tests: list[str]) -> tuple[dict[int, set[str]], float, float]:
    """For each line of ``module`` the tests execute, the tests that execute it ("" for a line run at
    import or collection, outside any test); and the untraced run's wall and CPU seconds. Raises if the
    tests fail."""
    target = str(copy_root / PKG / module)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(TRACER)
        out = Path(tmp) / "lines.json"
        env = _env(copy_root, {"MUTATION_TRACE_FILE": target, "MUTATION_TRACE_OUT": str(out)})
        env["PYTHONPATH"] = os.pathsep.join([tmp, env["PYTHONPATH"]])
        status, _, _ = _run(tests, env, timeout=3600)
        if status != "survived":
            raise SystemExit(f"{module}: the mapped tests fail (or time out) on the unmutated code: {tests}")
        raw = json.loads(out.read_text()) if out.exists() else {}
        hit = {int(line): set(ts) for line, ts in raw.items()}
    status, seconds, cpu = _run(tests, _env(copy_root), timeout=3600)
    return hit, seconds, cpu


def _covering(tests: list[str], covering: set[str]) -> list[str]:
    """The mapped tests to run against a mutant on a line executed by ``covering``: only those tests
    (in the map's file order), or every mapped test when the line also runs at import time (a module
    constant, a default argument, a decorator), where any test may depend on it."""
    if "" in covering:
        return tests
    files = [t.split("::")[0] for t in tests]
    return sorted(
        covering, key=lambda t: (files.index(t.split("::")[0]) if t.split("::")[0] in files else 99, t)
    )


def run_module(
    copy_root: Path,
    module: str,
    tests: list[str],
    sample: int | None,
    seed: int,
    save=lambda r: None,
    only: set[int] | None = None,
) -> ModuleResult:
    path = copy_root / PKG / module
    text = path.read_text()
    res = ModuleResult(module, tests)
    missing = [t for t in tests if not (ROOT / t.split("::")[0]).exists()]
    if missing:
        raise SystemExit(f"{module}: mapped tests missing: {missing}")
    try:
        hit, res.baseline_seconds, res.baseline_cpu_seconds = baseline(copy_root, module, tests)
    except SystemExit as err:  # the mapped tests fail unmutated: say so, score nothing, go on
        print(f"== {module}: SKIPPED, {err}", flush=True)
        res.total = res.sampled = -1
        return res
    mutants = enumerate_mutants(module, text)
    res.total = len(mutants)
    if only is not None:
        mutants = [m for m in mutants if m.index in only]
    elif sample is not None and len(mutants) > sample:
        mutants = sorted(random.Random(f"{seed}:{module}").sample(mutants, sample), key=lambda m: m.index)
    res.sampled = len(mutants)
    # forked: CPU seconds (a loaded machine does not turn slow runs into kills); --no-fork: wall
    base = res.baseline_cpu_seconds if FORK["copy_root"] is not None else res.baseline_seconds
    timeout = max(3 * base, base + 30)
    print(
        f"== {module}: {res.total} mutants, running {res.sampled} (baseline {res.baseline_seconds:.1f}s "
        f"wall, {res.baseline_cpu_seconds:.1f}s CPU, {len(hit)} lines covered)",
        flush=True,
    )
    try:
        for m in mutants:
            if m.line not in hit:
                m.status = "not covered"
                m.tests = []
            else:
                try:
                    path.write_text(mutated_source(text, m.index))
                except Exception as err:  # noqa: BLE001 - an unbuildable mutant is skipped, and said so
                    m.status = f"skipped ({type(err).__name__})"
                    continue
                m.tests = _covering(tests, hit[m.line])
                m.status, m.seconds, m.cpu_seconds = _run(m.tests, _env(copy_root), timeout)
                if m.status == "selection":  # the narrowed selection collected nothing: run them all
                    m.tests = tests
                    m.status, m.seconds, m.cpu_seconds = _run(tests, _env(copy_root), timeout)
                path.write_text(text)
            mark = "." if m.status in ("killed", "timeout") else "S"
            print(mark, end="", flush=True)
            res.mutants.append(m)
            save(res)
    finally:
        path.write_text(text)
    print(flush=True)
    return res


def _score(res: ModuleResult) -> tuple[int, int]:
    counted = [m for m in res.mutants if not m.status.startswith("skipped")]
    killed = sum(m.status in ("killed", "timeout") for m in counted)
    return killed, len(counted)


def report(results: list[ModuleResult]) -> str:
    rows, all_k, all_n = [], 0, 0
    for r in results:
        k, n = _score(r)
        all_k, all_n = all_k + k, all_n + n
        if r.total < 0:
            rows.append(f"{r.module:28s} SKIPPED: its mapped tests fail on the unmutated code")
            continue
        note = "" if r.sampled == r.total else f" (sample of {r.total})"
        rows.append(f"{r.module:28s} killed {k:4d} / {n:4d}  {100 * k / max(n, 1):5.1f}%{note}")
        for m in r.mutants:
            if m.status in ("survived", "not covered"):
                rows.append(
                    f"    SURVIVED{' (not covered)' if m.status == 'not covered' else ''} "
                    f"{r.module}:{m.line} [{m.op}] {m.source[:90]}"
                )
    rows.append(f"{'TOTAL':28s} killed {all_k:4d} / {all_n:4d}  {100 * all_k / max(all_n, 1):5.1f}%")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="module under src/rlhfops (repeatable)")
    ap.add_argument("--sample", type=int, default=None, help="at most N mutants per module (random)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="mutation-results.json")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--report", metavar="JSON", help="print the report of a saved (possibly partial) run")
    ap.add_argument(
        "--survivors-of", metavar="JSON", help="run again only the survivors of a saved run (same source)"
    )
    ap.add_argument(
        "--with-timeouts",
        action="store_true",
        help="with --survivors-of: also run again the mutants a timeout killed (to confirm those kills)",
    )
    ap.add_argument(
        "--no-fork", action="store_true", help="a fresh interpreter per mutant (slower; no shared imports)"
    )
    args = ap.parse_args(argv)
    only_idx: dict[str, set[int]] = {}
    if args.survivors_of:
        for r in json.loads(Path(args.survivors_of).read_text()):
            again = ("survived", "not covered", *(("timeout",) if args.with_timeouts else ()))
            idx = {m["index"] for m in r["mutants"] if m["status"] in again}
            if idx:
                only_idx[r["module"]] = idx
        args.only = [m for m in TARGETS if m in only_idx]
        if not args.only:
            print("no survivors to run again")
            return 0
    targets = {m: t for m, t in TARGETS.items() if not args.only or m in args.only}
    if args.only and len(targets) != len(args.only):
        ap.error(f"unknown module in --only; targets: {', '.join(TARGETS)}")
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        rs = [ModuleResult(**{**r, "mutants": [Mutant(**m) for m in r["mutants"]]}) for r in saved]
        print(report(rs))
        return 0
    if args.list:
        for m, t in targets.items():
            print(m, "->", " ".join(t))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="rlhfops-mutation-") as tmp:
        copy_root = Path(tmp)
        shutil.copytree(
            ROOT / "src", copy_root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
        if not args.no_fork:
            _preimport(copy_root, sorted({t for ts in targets.values() for t in ts}))
            FORK["copy_root"] = copy_root

        def save(current: ModuleResult) -> None:  # after every mutant: a stopped run keeps what it did
            done = [*results, current] if current not in results else results
            Path(args.json).write_text(json.dumps([asdict(r) for r in done], indent=1))

        for module, tests in targets.items():
            only = only_idx.get(module) if args.survivors_of else None
            results.append(run_module(copy_root, module, tests, args.sample, args.seed, save, only))
            save(results[-1])
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
