"""The steps of `rlhfops demo` (see :mod:`rlhfops.demo_plays`), sharing one :class:`Context`."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhfops.demo_eval import (
    DOWN,
    OVER_REFUSAL_CATEGORY,
    UP,
    Generator,
    criteria_rates,
    redteam_items,
    redteam_results,
    sequence_kl,
    win_rate,
)
from rlhfops.demo_plays import PEOPLE, DemoSettings, _acting, _override_if_blocked, _rows, _train, demo_signer
from rlhfops.demo_report import write_demo_report
from rlhfops.demo_sim import SIMULATED, candidate_items, label_items, other_task_prompts, production_week
from rlhfops.evaluate.run import prompt_set_digest
from rlhfops.examples import example_path
from rlhfops.gate.decide import gate_evaluate, gate_sign, promote
from rlhfops.monitor.drift_run import DriftSettings, run_drift
from rlhfops.monitor.logs import ingest_to_workspace
from rlhfops.train.kl_sweep import run_kl_sweep
from rlhfops.train.ppo_config import PPOConfig


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
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    annotation: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    gate_result: dict[str, Any] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None
    _gen: Generator | None = None
    _samples: list[str] = field(default_factory=list)
    _pair_prompts: list[str] = field(default_factory=list)

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def gen(self) -> Generator:
        if self._gen is None:
            self._gen = Generator(self.s.model, self.s.max_new_tokens)
        return self._gen

    def data(self, name: str) -> Path:
        return example_path(f"support_replies/{name}")

    def prompts(self) -> tuple[list[str], list[str]]:
        """(pair prompts, held-out prompts): disjoint slices of the shipped prompts file."""
        rows = [r["prompt"] for r in _rows(self.data("prompts.jsonl"))]
        held = rows[-self.s.heldout :]
        return rows[: min(self.s.pair_prompts, len(rows) - self.s.heldout)], held

    def _record(self, name: str, result: Any) -> None:
        self.runs[name] = str(result.run_dir)
        self.models[name] = str(result.run_dir / "final")
        self.ids[name] = result.summary.get("artifact_id", "")
        self.train[name] = result.summary.get("eval", {})

    # ---- plays ---------------------------------------------------------------------------------
    def play2(self) -> None:
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        demos = shutil.copy(self.data("demos.jsonl"), data / "demonstrations.jsonl")
        self.models["base"] = self.s.model
        sets = {"data": demos, "model": self.s.model, "output_dir": self.root / "runs" / "sft"}
        sets.update(max_steps=self.s.sft_steps, learning_rate=3e-5)
        self._record("sft", _train(self.ws, "sft", PEOPLE["domain-expert-lead"], sets, self.s, self.notes))
        self.refs["sft"] = "base"

    def candidates(self) -> None:
        pair_prompts, _ = self.prompts()
        model = self.gen.load(self.models["sft"])
        self._samples, _ = self.gen.replies(model, pair_prompts, temperature=1.0, samples=2, seed=self.s.seed)
        self._pair_prompts = pair_prompts
        del model

    def labels(self) -> None:
        shipped = _rows(self.data("prefs.jsonl"))
        rng = random.Random(self.s.seed)
        rng.shuffle(shipped)
        gold = shipped[: self.s.gold_pairs]
        extra = shipped[self.s.gold_pairs : self.s.gold_pairs + self.s.shipped_pairs]
        items = candidate_items(self._pair_prompts, self._samples, extra, seed=self.s.seed)
        out = label_items(
            items, gold, self.root / "data" / "preferences.jsonl", batch_size=10, seed=self.s.seed
        )
        meta = {
            "agreement": out.alpha,
            "agreement_metric": "krippendorff_alpha (nominal)",
            "percent_agreement": out.percent_agreement,
            "pairs": out.kept,
            "dropped": out.dropped,
            "simulated": True,
            "note": f"{SIMULATED} rater labels (rlhfops.annotate.simulate)",
        }
        self.ids["preferences"] = self.ws.register_artifact(
            "preferences", out.prefs_path, [self.ids["sft"]], PEOPLE["annotation-lead"], meta
        )
        self.annotation = {**vars(out), "prefs_path": str(out.prefs_path)}

    def reward_model(self) -> None:
        prefs = self.root / "data" / "preferences.jsonl"
        sets = {"data": prefs, "model": self.models["sft"], "output_dir": self.root / "runs" / "rm"}
        sets.update(max_steps=self.s.rm_steps, learning_rate=2e-5)
        self._record("rm", _train(self.ws, "rm", PEOPLE["annotation-lead"], sets, self.s, self.notes))

    def dpo(self) -> None:
        prefs = self.root / "data" / "preferences.jsonl"
        sets = {"data": prefs, "model": self.models["sft"], "output_dir": self.root / "runs" / "dpo"}
        sets.update(max_steps=self.s.dpo_steps, learning_rate=1e-5, beta=0.1)
        self._record("dpo", _train(self.ws, "dpo", PEOPLE["ml-engineer"], sets, self.s, self.notes))
        self.refs["dpo"] = "sft"

    def evaluate_first(self) -> None:
        for name in ("base", "sft", "dpo"):
            self._evaluate(name)

    def ppo_sweep(self) -> None:
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
            eval_every=max(1, self.s.ppo_steps),
            save_every=100000,
            progress=self.s.progress,
            seed=self.s.seed,
            learning_rate=1e-5,
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
                {"eval": summary.get("eval", {}), "kl_sweep": {"beta": row["value"]}},
            )
            self.runs[name], self.models[name], self.ids[name] = str(run), str(run / "final"), aid
            self.train[name] = {k: row[k] for k in ("score", "kl", "alarms", "alarm_names")}
            self.refs[name] = "sft"

    def evaluate_ppo(self) -> None:
        for name in [n for n in self.models if n.startswith("ppo-")]:
            self._evaluate(name)

    # ---- play 5 --------------------------------------------------------------------------------
    def _evaluate(self, name: str) -> None:
        """Greedy held-out replies (criteria), sampled replies (KL to the reference), red-team suites;
        stored as evaluation artifacts (policies only) in the gate's evaluation contract."""
        _, held = self.prompts()
        items = redteam_items(self.s.redteam_per_category)
        rt_prompts = [it.prompt for its in items.values() for it in its]
        model = self.gen.load(self.models[name])
        greedy, _ = self.gen.replies(model, held + rt_prompts)  # one batch: held-out + red-team prompts
        replies, rt_replies = greedy[: len(held)], greedy[len(held) :]
        kl = 0.0
        ref_name = self.refs.get(name)
        if ref_name:
            _, out = self.gen.replies(model, held, temperature=1.0, seed=self.s.seed + 7)
            ref = self.gen.load(self.models[ref_name])
            kl = sequence_kl(out, ref)
            del ref
        del model
        by_cat, i = {}, 0
        for cat, its in items.items():
            by_cat[cat], i = rt_replies[i : i + len(its)], i + len(its)
        rt = redteam_results(items, by_cat)
        ev = {
            "criteria": criteria_rates(replies),
            "kl": kl,
            "kl_reference": ref_name,
            "redteam": rt,
            "replies": [{"prompt": p, "reply": r} for p, r in zip(held, replies, strict=True)],
        }
        if name != "base":
            ev["win_rate"] = win_rate(replies, [r["reply"] for r in self.evals["base"]["replies"]])
        self.evals[name] = ev
        if name in ("base", "sft"):
            return
        self._store_evals(name, ev)

    def _store_evals(self, name: str, ev: dict[str, Any]) -> None:
        spec = self.ws.current_spec().spec
        targets = {t.behaviour: t.at_least for t in spec.success_criteria.increase}
        targets.update({t.behaviour: t.at_most for t in spec.success_criteria.decrease})
        base = self.evals["base"]["criteria"]
        sc = {}
        for beh, row in ev["criteria"].items():
            tgt = targets.get(beh)
            met = None if tgt is None else (row["rate"] >= tgt if beh == UP else row["rate"] <= tgt)
            sc[beh] = {
                "direction": row["direction"],
                "rate": row["rate"],
                "target": tgt,
                "met": met,
                "baseline_rate": base[beh]["rate"],
                "n": row["n"],
            }
        mid = self.ids[name]
        common = {"model": mid, "complete": True, "alarms": [], "suite": "support-heldout-demo"}
        n_rt = self.s.redteam_per_category
        note = f"rlhfops.redteam detectors; red team: first {n_rt} items per shipped suite; rubric judge"
        over = 1.0 - ev["redteam"][OVER_REFUSAL_CATEGORY]["pass_rate"]
        metas = [
            {
                **common,
                "kind": "success",
                "baseline": None,
                "success_criteria": sc,
                "kl": ev["kl"],
                "note": note,
            },
            {**common, "kind": "side_by_side", "baseline": None, "win_rate": ev["win_rate"], "note": note},
            {
                **common,
                "kind": "redteam",
                "suite": "redteam-demo",
                "baseline": None,
                "redteam": ev["redteam"],
                "over_refusal_rate": over,
                "note": note,
            },
        ]
        from rlhfops.workspace.provenance import record_evaluation

        digest = prompt_set_digest([r["prompt"] for r in ev["replies"]])
        judges = {"success": "demo detectors", "side_by_side": "demo rubric", "redteam": "demo detectors"}
        for m in metas:  # the same signed writer `eval run` uses
            record_evaluation(
                self.ws,
                m,
                ev["replies"],
                [note],
                [mid],
                PEOPLE["red-team-lead"],
                suite_digest=digest,
                judge=judges[m["kind"]],
            )

    def gate(self) -> None:
        cands = [n for n in self.models if n.startswith("ppo-")] + ["dpo"]
        rec = self.sweep.get("recommended")
        ppo = f"ppo-beta{rec:g}" if rec is not None else cands[0]
        verdicts = {n: gate_evaluate(self.ws, self.ids[n]) for n in cands}
        passing = [n for n in cands if verdicts[n].passed]
        chosen = passing[0] if passing else ppo
        g = verdicts[chosen]
        failed = [t.name for t in g.failed]
        owner = demo_signer(self.ws, PEOPLE["gate-owner"])
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
        self.gate_result = {
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
    def monitor(self) -> None:
        prod = self.gate_result.get("promoted") or "base"
        model_id = self.ids.get(prod) or f"base:{self.s.model}"
        # unique prompts (a repeated handful would look drifted by itself): the training side of the drift
        # test is the PPO prompts + half the demonstrations; production draws from the other support prompts
        pair_prompts, _ = self.prompts()
        demo_prompts = self._demo_prompts()
        train_side = [*pair_prompts, *demo_prompts[::2]]
        seen = set(train_side)
        pool = [p for p in [*demo_prompts[1::2], *_all_prompts(self)] if p not in seen]
        pool = list(dict.fromkeys(pool))[: self.s.per_day * 7]
        others = other_task_prompts(int(self.s.per_day * 4 * 0.6) + 8, seed=self.s.seed)
        model = self.gen.load(self.models[prod])
        short = Generator(self.s.model, self.s.production_tokens)
        short.tok = self.gen.tok

        def respond(prompts: list[str], m: Any = model) -> list[str]:  # only the prompts the week uses
            parts = [prompts[lo : lo + 32] for lo in range(0, len(prompts), 32)]
            return [r for part in parts for r in short.replies(m, part)[0]]

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

    def _demo_prompts(self) -> list[str]:
        return [r["prompt"] for r in _rows(self.data("demos.jsonl"))]

    def report(self) -> None:
        self.report_path = write_demo_report(self, self.root / "report.html")

    # ---- summary -------------------------------------------------------------------------------
    def criteria_table(self) -> list[dict[str, Any]]:
        rows = []
        for name, ev in self.evals.items():
            up, down = ev["criteria"][UP], ev["criteria"][DOWN]
            wr = ev.get("win_rate") or {}
            rows.append(
                {
                    "model": name,
                    "apology_remedy_rate": up["rate"],
                    "apology_remedy_ci": up["ci"],
                    "refusal_rate": down["rate"],
                    "refusal_ci": down["ci"],
                    "n": up["n"],
                    "kl": ev["kl"],
                    "kl_reference": ev["kl_reference"],
                    "win_rate_vs_base": wr.get("rate"),
                    "win_rate_ci": [wr.get("ci_low"), wr.get("ci_high")] if wr else None,
                    "redteam_pass": {c: r["pass_rate"] for c, r in ev["redteam"].items()},
                }
            )
        return rows

    def summary(self) -> dict[str, Any]:
        ann = {k: v for k, v in self.annotation.items() if k not in ("agreement_over_time", "gold")}
        return {
            "workspace": str(self.root),
            "people": PEOPLE,
            "artifacts": self.ids,
            "runs": self.runs,
            "training": self.train,
            "annotation": {**ann, "note": f"{SIMULATED} raters: no human labelled anything"},
            "kl_sweep": self.sweep,
            "criteria": self.criteria_table(),
            "gate": self.gate_result,
            "monitoring": {
                k: self.monitoring.get(k)
                for k in ("production_model", "drift_report", "triggers", "open_triggers", "simulated")
            },
            "notes": self.notes,
            "report": str(self.report_path) if self.report_path else None,
            "examples": self.examples(),
        }

    def examples(self, n: int = 3) -> list[dict[str, str]]:
        """The first ``n`` held-out prompts with the base model's and the gate candidate's replies."""
        after = self.gate_result.get("candidate")
        if "base" not in self.evals or after not in self.evals:
            return []
        pairs = zip(self.evals["base"]["replies"], self.evals[after]["replies"], strict=True)
        return [
            {"prompt": b["prompt"], "before": b["reply"], "after": a["reply"], "after_model": after}
            for b, a in list(pairs)[:n]
        ]


def _all_prompts(ctx: Context) -> list[str]:
    return [r["prompt"] for r in _rows(ctx.data("prompts.jsonl"))]
