"""Demo evaluation (Play 5 of `rlhfops demo`): generation, the rubric judge, KL, red team.

The demo measures here, with one loaded model at a time and one tokenizer, and stores the results as
``evaluation`` artifacts in the gate's evaluation contract (``kind`` success / side_by_side / redteam),
the same contract ``rlhfops eval run`` (:mod:`rlhfops.evaluate.run`) writes; the demo's side-by-side
judge is its stated rubric (below) because the simulated raters follow the same rubric.
Measures come from :mod:`rlhfops.measures` (refusal, distinct-2, Wilson), detectors from
:mod:`rlhfops.redteam.detectors` (apology with remedy, each red-team item's checks), and the red-team
items are the first N of each shipped suite (:mod:`rlhfops.redteam.suite`).

The side-by-side judge is the rubric below (rules, stated so a reader can check them):

* apology: ``sorry`` / ``apolog*`` / ``unfortunately``; remedy: a concrete next step word (refund,
  replacement, return label, reset link, cancel, ship, track, credit, ...);
* rubric score (the simulated raters' "true" preference and the side-by-side judge): +1 apology, +1.5
  remedy, +0.5 timeline (days / hours / today), -2 refusal, -1 over 4 sentences, -1.5 repetition
  (distinct-2 under 0.6), -1 empty or under 4 words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rlhfops.measures.diversity import text_distinct_n
from rlhfops.measures.intervals import wilson_interval
from rlhfops.measures.refusal import is_refusal
from rlhfops.models.loading import load_causal_lm, load_tokenizer
from rlhfops.redteam.detectors import apologises_with_remedy as _a
from rlhfops.redteam.detectors import check_item
from rlhfops.redteam.suite import load_suite, shipped_suites

_APOLOGY = re.compile(r"\b(sorry|apolog\w*|unfortunately)\b", re.I)
_REMEDY = re.compile(
    r"\b(refund\w*|replace\w*|return label|label|reset|cancel\w*|ship\w*|track\w*|credit\w*|"
    r"resend|re-send|send you|sent you|dispatch\w*|exchange\w*|updated?|changed?)\b",
    re.I,
)
_TIMELINE = re.compile(r"\b(\d+\s*-\s*\d+|\d+)\s*(business\s+)?(days?|hours?)\b|\btoday\b|\btomorrow\b", re.I)
_SENTENCE = re.compile(r"[.!?]+(\s|$)")

UP = "apologises and offers a remedy when the shop is at fault"
DOWN = "refuses a benign request"


def apologises_with_remedy(text: str) -> bool:
    return bool(_a(text))


def rubric_score(response: str) -> float:
    """The demo rubric (module docstring): higher is better."""
    t = response.strip()
    s = 0.0
    s += 1.0 if _APOLOGY.search(t) else 0.0
    s += 1.5 if _REMEDY.search(t) else 0.0
    s += 0.5 if _TIMELINE.search(t) else 0.0
    s -= 2.0 if is_refusal(t) else 0.0
    s -= 1.0 if len(_SENTENCE.findall(t)) > 4 else 0.0
    s -= 1.5 if text_distinct_n(t, 2) < 0.6 else 0.0
    s -= 1.0 if len(t.split()) < 4 else 0.0
    return s


# ---- red team: the shipped suites (rlhfops.redteam), the first items of each category ----------------
def redteam_items(per_category: int) -> dict[str, list[Any]]:
    """Category -> its first ``per_category`` items from the shipped red-team suites."""
    return {name: load_suite(name).items[:per_category] for name in shipped_suites()}


OVER_REFUSAL_CATEGORY = "benign_but_risky_looking"


# ---- generation and KL ---------------------------------------------------------------------------
@dataclass
class Generator:
    """Loads models by path with one tokenizer (the base model's) and generates chat replies."""

    tokenizer_from: str
    max_new_tokens: int = 48

    def __post_init__(self) -> None:
        self.tok = load_tokenizer(self.tokenizer_from, padding_side="left")

    def encode(self, prompts: list[str]) -> list[list[int]]:
        out = []
        for p in prompts:
            ids = self.tok.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True
            )
            out.append(list(ids if isinstance(ids, list) else ids["input_ids"]))
        return out

    def load(self, path: str) -> Any:
        return load_causal_lm(path, trainable=False).eval()

    def replies(
        self, model: Any, prompts: list[str], temperature: float = 0.0, samples: int = 1, seed: int = 0
    ) -> tuple[list[str], Any]:
        """Replies (prompt by prompt, ``samples`` each) and the raw GenerationOutput."""
        import torch

        from rlhfops.models.generate import generate

        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            out = generate(
                model,
                self.encode(prompts),
                max_new_tokens=self.max_new_tokens,
                temperature=temperature,
                eos_token_id=self.tok.eos_token_id,
                pad_token_id=self.tok.pad_token_id,
                generator=g,
                num_samples=samples,
            )
        texts = []
        for i in range(out.response_ids.shape[0]):
            resp = out.response_ids[i][out.response_mask[i].bool()].tolist()
            texts.append(self.tok.decode(resp, skip_special_tokens=True).strip())
        return texts, out


def sequence_kl(policy_out: Any, ref_model: Any) -> float:
    """Mean over responses of sum_t [log pi(y_t) - log ref(y_t)] on responses sampled from the policy
    at temperature 1 (the k1 Monte-Carlo estimate of KL(pi || ref) per response, Schulman 2020)."""
    import torch

    mask = torch.cat([policy_out.prompt_mask, policy_out.response_mask], dim=1).long()
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = ref_model(input_ids=policy_out.sequences, attention_mask=mask, position_ids=pos).logits
    p = policy_out.prompt_length
    lp = torch.log_softmax(logits[:, p - 1 : -1].float(), dim=-1)
    ref = lp.gather(-1, policy_out.response_ids.unsqueeze(-1)).squeeze(-1)
    rmask = policy_out.response_mask.float()
    diff = ((policy_out.logprobs.float() - ref) * rmask).sum(1)
    return float(diff.mean())


# ---- measures --------------------------------------------------------------------------------------
def ci95(successes: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval (:func:`rlhfops.measures.intervals.wilson_interval`) rounded to 12
    decimals for the demo's report; (0, 1) without data."""
    if n == 0:
        return 0.0, 1.0
    lo, hi = wilson_interval(successes, n, 0.95)
    return round(lo, 12), round(hi, 12)


def criteria_rates(replies: list[str]) -> dict[str, dict[str, Any]]:
    n = len(replies)
    up = sum(apologises_with_remedy(r) for r in replies)
    down = sum(is_refusal(r) for r in replies)
    return {
        UP: {"direction": "increase", "n": n, "count": up, "rate": up / n if n else 0.0, "ci": ci95(up, n)},
        DOWN: {
            "direction": "decrease",
            "n": n,
            "count": down,
            "rate": down / n if n else 0.0,
            "ci": ci95(down, n),
        },
    }


def win_rate(candidate: list[str], baseline: list[str]) -> dict[str, Any]:
    """Side-by-side by the rubric judge, each pair judged in both orders (the rule judge is symmetric,
    so both orders agree; kept so a model judge can be swapped in). Ties count half."""
    wins = ties = losses = 0
    for c, b in zip(candidate, baseline, strict=True):
        sc, sb = rubric_score(c), rubric_score(b)
        wins, ties, losses = wins + (sc > sb), ties + (sc == sb), losses + (sc < sb)
    n = wins + ties + losses
    rate = (wins + 0.5 * ties) / n if n else 0.0
    lo, hi = ci95(wins + 0.5 * ties, n)
    return {
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "n": n,
        "rate": rate,
        "ci_low": lo,
        "ci_high": hi,
        "judge": "demo-rubric-rules",
    }


def redteam_results(
    items: dict[str, list[Any]], responses: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Per category: passed / total / pass_rate and up to 5 failures (every check of the item must pass:
    :func:`rlhfops.redteam.detectors.check_item`)."""
    out: dict[str, dict[str, Any]] = {}
    for cat, its in items.items():
        got = responses[cat]
        checks = [check_item(it, r) for it, r in zip(its, got, strict=True)]
        ok = [all(c.passed for c in cs) for cs in checks]
        out[cat] = {
            "passed": sum(ok),
            "total": len(ok),
            "pass_rate": sum(ok) / len(ok) if ok else 0.0,
            "failures": [
                {
                    "id": it.id,
                    "prompt": it.prompt,
                    "response": r,
                    "expected": it.expected,
                    "why": "; ".join(c.reason for c in cs if not c.passed),
                }
                for it, r, good, cs in zip(its, got, ok, checks, strict=True)
                if not good
            ][:5],
        }
    return out
