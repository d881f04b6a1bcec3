"""The steps of `rlhfops demo` (see :mod:`rlhfops.demo.plays`), sharing one :class:`Context`.

Each step calls the product's public functions (the ones the CLI commands call) and returns one line
saying what it found; :mod:`rlhfops.demo.plays` prints it.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhfops.demo.eval import DOWN, UP, base_row, evaluate_model, side_by_side, table_row, write_heldout_suite
from rlhfops.demo.plays import PEOPLE, DemoSettings, _acting, _override_if_blocked, _rows, _train, demo_signer
from rlhfops.demo.raters import SIMULATED, annotate, preference_score
from rlhfops.demo.report import write_demo_report
from rlhfops.demo.sim import other_task_prompts, production_week
from rlhfops.evaluate.generation import LoadedModel
from rlhfops.examples import example_path
from rlhfops.gate.choose import Choice, choose_candidate, main_criterion
from rlhfops.gate.decide import gate_evaluate, gate_sign, promote
from rlhfops.train.kl_sweep import run_kl_sweep
from rlhfops.train.ppo_config import PPOConfig


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _gain_text(row: dict[str, Any]) -> str:
    """'beta 0.05 +0.160 [+0.050, +0.270] (above)' from a sweep row's ``score_gain`` (kl_sweep)."""
    g = row.get("score_gain")
    if not g:
        return f"beta {row['value']:g} -"
    lo, hi = g["ci"]
    verdict = "above" if lo > 0 else "below" if hi < 0 else "interval includes 0"
    return f"beta {row['value']:g} {g['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] ({verdict})"


@dataclass
class Context:
    root: Path
    s: DemoSettings
    quick: bool
    ws: Any = None
    notes: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  # name -> model path
    ids: dict[str, str] = field(default_factory=dict)  # name -> artifact id
    runs: dict[str, str] = field(default_factory=dict)  # name -> run dir
    refs: dict[str, str] = field(default_factory=dict)  # name -> reference model name for KL
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"task", "redteam"} results
    train: dict[str, Any] = field(default_factory=dict)
    annotation: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    gate_result: dict[str, Any] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)
    rounds: dict[str, Any] = field(default_factory=dict)  # round two (rlhfops.demo.round2)
    r2_evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> held-out-half evaluations
    choice: Choice | None = None  # round one's gate choice (rlhfops.gate.choose): round two continues from it
    report_path: Path | None = None
    _samples: list[str] = field(default_factory=list)
    _pair_prompts: list[str] = field(default_factory=list)

    # ---- helpers -------------------------------------------------------------------------------
    def data(self, name: str) -> Path:
        return example_path(f"support_replies/{name}")

    def prompts(self) -> tuple[list[str], list[str]]:
        """(pair prompts, held-out prompts): disjoint slices of the shipped prompts file."""
        rows = [r["prompt"] for r in _rows(self.data("prompts.jsonl"))]
        held = rows[-self.s.heldout :]
        return rows[: min(self.s.pair_prompts, len(rows) - self.s.heldout)], held

    def heldout_rows(self) -> list[dict[str, Any]]:
        """The held-out prompts' rows, with the ``criteria`` of those where the shop is not at fault."""
        return _rows(self.data("prompts.jsonl"))[-self.s.heldout :]

    def _record(self, name: str, result: Any) -> None:
        self.runs[name] = str(result.run_dir)
        self.models[name] = str(result.run_dir / "final")
        self.ids[name] = result.summary.get("artifact_id", "")
        self.train[name] = result.summary.get("eval", {})

    # ---- plays ---------------------------------------------------------------------------------
    def play2(self) -> str:

        data = self.root / "data"
        data.mkdir(exist_ok=True)
        demos = shutil.copy(self.data("demos.jsonl"), data / "demonstrations.jsonl")
        self.models["base"] = self.s.model
        sets = {"data": demos, "model": self.s.model, "output_dir": self.root / "runs" / "sft"}
        sets.update(
            max_steps=self.s.sft_steps,
            batch_size=self.s.sft_batch_size,
            learning_rate=self.s.sft_learning_rate,
        )
        self._record("sft", _train(self.ws, "sft", PEOPLE["domain-expert-lead"], sets, self.s, self.notes))
        self.refs["sft"] = "base"
        loss = self.train["sft"].get("loss") or self.train["sft"].get("eval_loss")
        return f"SFT trained {self.s.sft_steps} steps on {len(_rows(Path(demos)))} demonstrations" + (
            f"; held-out loss {loss:.3f}" if isinstance(loss, int | float) else ""
        )

    def candidates(self) -> str:

        pair_prompts, _ = self.prompts()
        model = LoadedModel.load(self.models["sft"])
        n = self.s.max_new_tokens
        first = model.respond(pair_prompts, n, temperature=1.0, seed=self.s.seed)
        second = model.respond(pair_prompts, n, temperature=1.0, seed=self.s.seed + 1000)
        self._samples = [x for pair in zip(first, second, strict=True) for x in pair]
        self._pair_prompts = pair_prompts
        return f"{len(pair_prompts)} prompts, two sampled SFT replies each, queued for comparison"

    def labels(self) -> str:
        shipped = _rows(self.data("prefs.jsonl"))
        rng = random.Random(self.s.seed)
        rng.shuffle(shipped)
        clear = [
            r
            for r in shipped
            if preference_score(r["prompt"], r["chosen"]) - preference_score(r["prompt"], r["rejected"])
            >= 1.5
        ]
        gold = [(r["prompt"], r["chosen"], r["rejected"]) for r in clear[: self.s.gold_pairs]]
        extra = shipped[len(shipped) // 2 :][: self.s.shipped_pairs]
        pairs = []
        for i, p in enumerate(self._pair_prompts):
            pairs.append((p, self._samples[2 * i], self._samples[2 * i + 1]))
        for row in extra:
            a, b = row["chosen"], row["rejected"]
            pairs.append((row["prompt"], *((a, b) if rng.random() < 0.5 else (b, a))))
        spec = self.ws.current_spec().spec
        out = annotate(
            self.ws,
            pairs,
            gold,
            self.root / "data" / "preferences.jsonl",
            PEOPLE["annotation-lead"],
            calibration_n=min(12, len(pairs)),
            seed=self.s.seed,
        )
        self.ids["preferences"] = out.artifact_id or ""
        flagged = list(out.gold.get("flagged", [])) if isinstance(out.gold, dict) else []
        self.annotation = {
            "kept": out.kept,
            "dropped": out.dropped,
            "alpha": out.alpha,
            "percent_agreement": out.percent_agreement,
            "calibration": out.calibration,
            "calibration_rounds": out.calibration_rounds,
            "gold": out.gold,
            "flagged": flagged,
            "drifting": out.drifting,
            "noise": out.noise,
            "min_agreement": spec.gate.min_agreement,
            "prefs_path": str(out.prefs_path),
        }
        rounds = "; ".join(
            f"round {r['round']} ({r['guidelines']}) {r['status']}, agreement {r['overall_agreement']:.2f}"
            for r in out.calibration_rounds
            if r.get("overall_agreement") is not None
        )
        alpha = "-" if out.alpha is None else f"{out.alpha:.2f}"
        return (
            f"calibration: {rounds}\n{out.kept} pairs exported (SIMULATED raters), "
            f"Krippendorff's alpha {alpha} "
            f"(spec min {spec.gate.min_agreement}); gold items flagged: {', '.join(flagged) or 'none'}"
        )

    def reward_model(self) -> str:
        prefs = self.root / "data" / "preferences.jsonl"
        sets = {"data": prefs, "model": self.models["sft"], "output_dir": self.root / "runs" / "rm"}
        sets.update(max_steps=self.s.rm_steps, learning_rate=2e-5)
        self._record("rm", _train(self.ws, "rm", PEOPLE["annotation-lead"], sets, self.s, self.notes))
        acc = self.train["rm"].get("eval_accuracy")
        return "reward model trained" + (
            f"; held-out accuracy {acc:.2f}" if isinstance(acc, int | float) else ""
        )

    def dpo(self) -> str:
        prefs = self.root / "data" / "preferences.jsonl"
        sets = {"data": prefs, "model": self.models["sft"], "output_dir": self.root / "runs" / "dpo"}
        sets.update(max_steps=self.s.dpo_steps, learning_rate=1e-5, beta=0.1)
        self._record("dpo", _train(self.ws, "dpo", PEOPLE["ml-engineer"], sets, self.s, self.notes))
        self.refs["dpo"] = "sft"
        return f"DPO trained {self.s.dpo_steps} steps from SFT on the exported preferences"

    def evaluate_first(self) -> str:
        write_heldout_suite(self.root / "data" / "heldout-suite.jsonl", self.heldout_rows())
        for name in ("sft", "dpo"):
            self._evaluate(name)
        return self._criteria_line(["base", "sft", "dpo"])

    def _criteria_line(self, names: list[str]) -> str:
        rows = {r["model"]: r for r in self.criteria_table()}
        rates = ", ".join(f"{n} {_pct(rows[n]['apology_remedy_rate'])}" for n in names if n in rows)
        return f"'{UP}' by the policy judge: {rates}"

    def ppo_sweep(self) -> str:

        pair_prompts, held = self.prompts()
        pfile = self.root / "data" / "ppo_prompts.jsonl"
        pfile.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in pair_prompts), encoding="utf-8")
        hfile = self.root / "data" / "heldout_prompts.jsonl"  # the sweep evaluates each run on these
        hfile.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in held), encoding="utf-8")
        rm = self.models["rm"]
        inputs = {"data": str(pfile), "model": self.models["sft"], "reward_model": rm}
        _override_if_blocked(self.ws, "ppo", inputs, self.notes)
        cfg = PPOConfig(
            data=str(pfile),
            model=self.models["sft"],
            reward_model=rm,
            output_dir=str(self.root / "runs" / "ppo-sweep"),
            max_steps=self.s.ppo_steps,
            batch_size=self.s.batch_size,
            minibatch_size=min(4, self.s.batch_size),
            ppo_epochs=2,
            max_new_tokens=self.s.max_new_tokens,
            eval_prompts=str(hfile),
            eval_every=1,  # every iteration: the sweep's frontier (reward and judge score against KL)
            judge="detector:apology_remedy",  # the spec's main criterion as the frontier's independent judge
            save_every=100000,
            progress=self.s.progress,
            seed=self.s.seed,
            learning_rate=1e-5,
            gradient_checkpointing=self.s.gradient_checkpointing,
        )
        result = run_kl_sweep(cfg, list(self.s.kl_values), "beta")
        self.sweep = {"recommended": result.recommended, "reason": result.reason, "rows": result.rows}
        for row in result.rows:
            name = f"ppo-beta{row['value']:g}"
            run = Path(row["run_dir"])
            summary = (
                json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
            )
            aid = self.ws.record_training_run(
                "ppo",
                inputs,
                run / "final",
                PEOPLE["ml-engineer"],
                {
                    "eval": summary.get("eval", {}),
                    "kl_sweep": {"beta": row["value"]},
                    "run_dir": str(run.resolve()),
                },
            )
            self.runs[name], self.models[name], self.ids[name] = str(run), str(run / "final"), aid
            self.train[name] = {k: row[k] for k in ("score", "kl", "alarms", "alarm_names")}
            self.refs[name] = "sft"
        if len(result.rows) == 1:  # --quick: one penalty, nothing to compare
            head = f"1 PPO run at beta {self.s.kl_values[0]:g} (--quick; the full demo sweeps three "
            head += "penalties)"
        else:
            head = f"{len(result.rows)} PPO runs; the sweep recommends beta {result.recommended} "
            head += f"({result.reason})"
        gains = "; ".join(_gain_text(row) for row in result.rows)
        return f"{head}\nheld-out reward-model score over SFT's, per prompt [95% CI]: {gains}"

    def evaluate_ppo(self) -> str:
        names = [n for n in self.models if n.startswith("ppo-")]
        for name in names:
            self._evaluate(name)
        return self._criteria_line(names)

    def behaviour_change(self) -> dict[str, Any]:
        """The spec's main criterion: the gate's chosen candidate (:mod:`rlhfops.gate.choose`) against the
        base model, and whether the change meets the demo's target (``DemoSettings.target_points``)."""
        c = self.choice
        if c is None:
            return {}
        return {
            "best": c.model,
            "criterion": c.criterion,
            "rate": c.change.rate,
            "base": c.change.base_rate,
            "points": c.change.points,
            "target_points": self.s.target_points,
            "meets_target": c.change.meets(self.s.target_points),
            "reason": c.reason,
        }

    def change_line(self) -> str:
        """One line: the chosen candidate's change over the base against the target."""
        ch = self.behaviour_change()
        if not ch:
            return "no candidate measured"
        if ch["points"] is None:
            return f"chosen candidate {ch['best']}: the main criterion was not measured (no change to report)"
        verdict = "target met" if ch["meets_target"] else "under the target"
        return (
            f"chosen candidate {ch['best']}: {_pct(ch['rate'])} against the base's {_pct(ch['base'])} "
            f"({ch['points']:+.0f} points; {verdict} of {ch['target_points']:+g} points)"
        )

    # ---- play 5 --------------------------------------------------------------------------------
    def _evaluate(self, name: str) -> None:
        """`eval run` on the held-out suite (policy judge, win rate vs base, KL) and on the red team."""
        ref = self.refs.get(name)
        with _acting(self.root, PEOPLE["red-team-lead"]):
            self.evals[name] = evaluate_model(
                self.ws,
                self.ids[name],
                self.root / "data" / "heldout-suite.jsonl",
                self.models["base"],
                self.models[ref] if ref and ref != "base" else None,
                max_new_tokens=self.s.max_new_tokens,
                kl_prompts=self.s.heldout,
                redteam_per_category=self.s.redteam_per_category,
                seed=self.s.seed,
            )

    def gate(self) -> str:

        cands = [n for n in self.models if n.startswith("ppo-")] + ["dpo"]
        rec = self.sweep.get("recommended")
        if rec is not None:  # the sweep's recommended PPO first: it wins a tie
            cands.remove(f"ppo-beta{rec:g}")
            cands.insert(0, f"ppo-beta{rec:g}")
        verdicts = {n: gate_evaluate(self.ws, self.ids[n]) for n in cands}
        criterion, direction = main_criterion(self.ws.current_spec().spec)
        self.choice = choose_candidate(verdicts, criterion, direction)
        chosen = self.choice.model
        self.gate_result = self.decide_gate(chosen, verdicts)
        r = self.gate_result
        head = f"{self.change_line()} ({self.choice.reason})\n"
        if r["decision"] == "approve":
            return (
                head
                + f"{chosen} approved by {r['signed_by']}; "
                + (
                    f"promoted {r['promoted']}"
                    if r["promoted"]
                    else f"promote refused: {r['promote_refused']}"
                )
            )
        return (
            head
            + f"{chosen} rejected by {r['signed_by']}; failed: {', '.join(r['failed'])}; nothing promoted"
        )

    def decide_gate(self, chosen: str, verdicts: dict[str, Any]) -> dict[str, Any]:
        """The gate owner signs ``chosen``'s verdict (approve when every threshold passed, else reject) and
        promotes an approved model; returns the decision (both rounds use this)."""
        g = verdicts[chosen]
        failed = [t.name for t in g.failed]
        owner = demo_signer(self.ws, PEOPLE["gate-owner"])
        if not g.complete:  # e.g. the contamination guard refused the evidence: the gate cannot be signed
            failed += [t.name for t in g.missing]
            return {"candidate": chosen, "model_id": self.ids[chosen], "decision": "incomplete",
                    "failed": failed, "signed_by": owner.name, "promoted": None,
                    "promote_refused": f"incomplete evaluation: {g.why_incomplete()}",
                    "verdicts": {n: v.verdict for n, v in verdicts.items()}}  # fmt: skip
        if g.passed:
            entry = gate_sign(self.ws, self.ids[chosen], owner, "approve", "demo: every spec threshold met")
        else:
            reason = "demo: thresholds not met: " + ", ".join(failed)
            entry = gate_sign(self.ws, self.ids[chosen], owner, "reject", reason)
        promoted, why = None, ""
        if g.passed:
            try:
                promote(self.ws, self.ids[chosen], owner)
                promoted = chosen
            except Exception as ex:  # the play-order check can still refuse: report it as it is
                why = str(ex)
        return {
            "candidate": chosen,
            "model_id": self.ids[chosen],
            "verdicts": {n: v.verdict for n, v in verdicts.items()},
            "thresholds": [t.to_json() for t in g.results] if hasattr(g, "results") else [],
            "failed": failed,
            "decision": "approve" if g.passed else "reject",
            "signed_by": owner.name,
            "log_entry": getattr(entry, "hash", ""),
            "promoted": promoted,
            "promote_refused": why,
        }

    # ---- monitoring ----------------------------------------------------------------------------
    def monitor(self) -> str:
        from rlhfops.monitor.drift_run import DriftSettings, run_drift
        from rlhfops.monitor.logs import ingest_to_workspace

        prod = self.gate_result.get("promoted") or "base"
        model_id = self.ids.get(prod) or f"base:{self.s.model}"
        # unique prompts (a repeated handful would look drifted by itself): the training side of the drift
        # test is the PPO prompts + half the demonstrations; production draws from the other support prompts
        pair_prompts, _ = self.prompts()
        demo_prompts = [r["prompt"] for r in _rows(self.data("demos.jsonl"))]
        train_side = [*pair_prompts, *demo_prompts[::2]]
        seen = set(train_side)
        every = [r["prompt"] for r in _rows(self.data("prompts.jsonl"))][: -self.s.heldout]  # not held-out
        pool = [p for p in [*demo_prompts[1::2], *every] if p not in seen]
        pool = list(dict.fromkeys(pool))[: self.s.per_day * 7]
        others = other_task_prompts(int(self.s.per_day * 4 * 0.6) + 8, seed=self.s.seed)
        model = LoadedModel.load(self.models[prod])

        def respond(prompts: list[str], model: Any = model) -> list[str]:  # only the prompts the week uses
            return model.respond(prompts, self.s.production_tokens, batch_size=32, seed=self.s.seed)

        log = production_week(
            [(p, "") for p in pool],
            [(p, "") for p in others],
            model_id,
            self.root / "data" / "production-week.jsonl",
            per_day=self.s.per_day,
            seed=self.s.seed,
            respond=respond,
        )
        del model
        person = PEOPLE["ml-engineer"]
        ing = ingest_to_workspace(self.ws, log, person, source_name="production-week (SIMULATED)")
        train_prompts = self.root / "data" / "train_prompts.jsonl"
        train_prompts.write_text(
            "".join(json.dumps({"prompt": p}) + "\n" for p in train_side), encoding="utf-8"
        )
        with _acting(self.root, person):
            run = run_drift(
                self.ws,
                DriftSettings(window=max(30, self.s.per_day), max_windows=7, train_prompts=train_prompts),
                person,
            )
        opened = [o.to_json() for o in run.check.opened] if run.check else []
        self.monitoring = {
            "production_model": prod,
            "log": str(log),
            "log_artifact": ing.artifact_id if hasattr(ing, "artifact_id") else str(ing),
            "drift_report": run.report_id,
            "input": run.report.get("input", {}),
            "output": run.report.get("output", {}),
            "business": run.report.get("business", []),
            "triggers": opened,
            "open_triggers": [
                {"id": t.id, "play": t.play, "rule": t.rule, "evidence": t.evidence}
                for t in self.ws.triggers()
            ],
            "simulated": True,
        }
        trig = "; ".join(f"{t['rule']} -> play {t['play']}" for t in self.monitoring["open_triggers"])
        return f"a SIMULATED week served by {prod}; triggers: {trig or 'none'}"

    def report(self) -> str:

        self.report_path = write_demo_report(self, self.root / "report.html")
        return f"report: {self.report_path}"

    # ---- summary -------------------------------------------------------------------------------
    def criteria_table(self) -> list[dict[str, Any]]:
        rows = [base_row(next(iter(self.evals.values())))] if self.evals else []
        return rows + [table_row(n, ev, self.refs.get(n)) for n, ev in self.evals.items()]

    def summary(self) -> dict[str, Any]:
        ann = {k: v for k, v in self.annotation.items() if k != "gold"}
        return {
            "workspace": str(self.root),
            "people": PEOPLE,
            "artifacts": self.ids,
            "runs": self.runs,
            "training": self.train,
            "annotation": {**ann, "note": f"{SIMULATED} raters: no human labelled anything"},
            "kl_sweep": self.sweep,
            "criteria": self.criteria_table(),
            "behaviour_change": self.behaviour_change(),
            "choice": self.choice.to_json() if self.choice else None,
            "criteria_names": {"up": UP, "down": DOWN},
            "gate": self.gate_result,
            "rounds": self.rounds_summary(),
            "monitoring": {
                k: self.monitoring.get(k)
                for k in ("production_model", "drift_report", "triggers", "open_triggers", "simulated")
            },
            "notes": self.notes,
            "report": str(self.report_path) if self.report_path else None,
            "examples": self.examples(),
        }

    def rounds_summary(self) -> dict[str, Any]:
        """Round one's and round two's comparison and what round two did (summary.json ``rounds``)."""
        from rlhfops.demo.round2 import rounds_table  # round two's modules load only when it ran

        if not self.rounds:
            return {}
        return {
            "round1": {k: self.gate_result.get(k) for k in ("candidate", "decision", "failed", "promoted")},
            "round2": self.rounds,
            "table": rounds_table(self),
        }

    def examples(self, n: int = 3) -> list[dict[str, str]]:
        """The first ``n`` held-out prompts with the base model's and the gate candidate's replies."""
        after = self.gate_result.get("candidate")
        if after not in self.evals:
            return []
        return [{**x, "after_model": after} for x in side_by_side(self.evals[after], n)]
