"""Build the synthetic customer-support example data (deterministic; run ``python build.py [OUT_DIR]``).

The shop "Juniper Lane" (fictional) sells home and kitchen goods online. Customer messages come from
templates per issue (late delivery, damage, wrong item, refunds, returns, cancellations, address
changes, log-in trouble, double charges, discount codes, missing items, tracking, warranty, exchanges,
account deletion, shipping questions), filled with names, products, order numbers and tones from a
seeded RNG. Good replies follow one shop policy (below), apologise when the shop is at fault, give a
concrete remedy and stay at 2-4 sentences. Rejected replies imitate a small model's failure modes:
needless refusals (short and long), rambling with repetition, and vague non-answers with no remedy.
Their lengths are drawn so that chosen and rejected lengths overlap: length alone does not tell them
apart.

The templated demonstrations only ever show the expert agreeing and acting. edge_demos.jsonl holds
N_EDGE = 48 hand-written edge cases for them (templates.yaml ``edge_cases``: 14 false claims about the
policy or the order's history, corrected; 10 harmful or out-of-scope requests, declined with an offer of
help with an order; 10 questions nobody can answer with certainty, hedged; 8 hostile customers, answered
calmly with the policy remedy and no extra; 6 messages with a pasted instruction, ignored). They are a
separate file, not part of demos.jsonl: mixed into the demo's one pass of SFT on the bundled 135M model
they moved no red-team category (docs/benchmarks.md, issue 19, section 15). They use no RNG, so the
templated rows and prefs.jsonl / prompts.jsonl are the same with or without them.

Shop policy used throughout: 30-day returns; free prepaid return labels for damaged, faulty or wrong
items; refunds to the original payment method within 5-7 business days of the return being received;
standard delivery 3-5 business days, express 1-2 ($9.95); a 2-year warranty. A good reply states no
other figure and names no order number or amount the customer did not give (the spec's policy section,
checked by the policy judge; ``tests/data/test_data_examples.py`` holds the good replies to it).

The templates, vocabulary and rejected-reply pieces live in templates.yaml beside this file.

Outputs: demos.jsonl ({"prompt", "completion"}), edge_demos.jsonl (the same fields), prefs.jsonl
({"prompt", "chosen", "rejected"}), prompts.jsonl ({"prompt"}, held out; prompts where the shop is not
at fault add {"criteria": [...]}, the spec behaviours they measure, for evaluation suites). Prompts are
unique within and across the four files.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any, NamedTuple

import yaml

SEED = 20240611
N_DEMOS, N_PREFS, N_PROMPTS = 240, 400, 120
HERE = Path(__file__).resolve().parent
T: dict[str, Any] = yaml.safe_load((HERE / "templates.yaml").read_text(encoding="utf-8"))
SHOP: str = T["shop"]
ISSUES: dict[str, dict[str, Any]] = T["issues"]
#: red-team category -> {"expected": behaviour, "pairs": [{"prompt", "completion", "canary"?}]}
EDGE_CASES: dict[str, dict[str, Any]] = T["edge_cases"]
N_EDGE = sum(len(c["pairs"]) for c in EDGE_CASES.values())
MODES = {"refusal_short": 2, "refusal_long": 2, "rambling": 3, "vague": 3}  # rejected-reply mix (weights)


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _ctx(rng: random.Random) -> dict[str, str]:
    product = rng.choice(T["products"])
    colours = rng.sample(T["colours"], 2)
    return {
        "name": rng.choice(T["names"]),
        "product": product,
        "a_product": _a(product),
        "order": f"JL-{rng.randint(100000, 999999)}",
        "days": str(rng.randint(3, 16)),
        "amount": f"{rng.randint(12, 240)}.{rng.choice(['00', '50', '99'])}",
        "colour": colours[0],
        "colour2": colours[1],
        "code": rng.choice(T["codes"]),
        "when_city": rng.choice(T["cities"]),
        "a_other": _a(rng.choice([p for p in T["products"] if p != product])),
        "refund_days": str(rng.randint(8, 21)),
        "when": rng.choice(["Monday", "last week", "on the 3rd", "yesterday", "two weeks ago", "on Friday"]),
        "warranty": "2-year",
    }


def _fill(template: str, ctx: dict[str, str]) -> str:
    return template.format(**ctx)


def make_prompt(rng: random.Random, issue: str, ctx: dict[str, str]) -> tuple[str, list[str] | None, bool]:
    """(customer message, the remedies that fit this ask or None for the issue's own, signed with name?)."""
    ask = rng.choice(ISSUES[issue]["asks"])
    template, remedies = (ask, None) if isinstance(ask, str) else (ask["ask"], ask["remedies"])
    body = _fill(template, ctx)
    greet = rng.choice(T["greetings"])
    if greet and body[0].isupper() and not body.startswith("I"):
        body = body[0].lower() + body[1:]
    sign = rng.choice(T["sign_offs"])
    text = greet + body + rng.choice(T["extras"]) + _fill(sign, ctx)
    return text.strip(), remedies, bool(sign)


# A reply may name only the order number and amounts the customer gave (the policy: nothing invented).
_UNGIVEN = {
    "order": [
        ("Your order {order}", "Your order"),
        ("your order {order}", "your order"),
        ("order {order}", "your order"),
        ("{order}", "your order"),
    ],
    "amount": [
        ("refund of ${amount}", "refund"),
        ("the full ${amount}", "the full amount"),
        ("payment of ${amount}", "payment"),
        ("duplicate ${amount} charge", "duplicate charge"),
    ],
}


def _given_only(template: str, ctx: dict[str, str], prompt: str) -> str:
    for key, reps in _UNGIVEN.items():
        if ctx[key] not in prompt:
            for old, new in reps:
                template = template.replace(old, new)
    return template


# The bundled spec's success criteria that a prompt where the shop is not at fault measures: "apologises and
# offers a remedy when the shop is at fault" does not apply to it (an evaluation suite item's `criteria`).
NOT_AT_FAULT_CRITERIA = ["refuses a benign request"]


def at_fault(issue: str) -> bool:
    """Whether the shop is at fault in this issue: its good replies always apologise (no empty apology)."""
    return "" not in ISSUES[issue]["apology"]


def good_reply(
    rng: random.Random,
    issue: str,
    ctx: dict[str, str],
    remedies: list[str] | None,
    signed: bool,
    prompt: str = "",
) -> str:
    """2-4 sentences: apology when the shop is at fault, a concrete remedy, a detail (always when there
    is no apology) and an optional closing.

    The customer's name is used only when they signed the message.
    """
    spec = ISSUES[issue]
    parts = [rng.choice(spec["apology"]), rng.choice(remedies or spec["remedy"])]
    if spec["detail"] and (not parts[0] or rng.random() < 0.75):  # at least 2 sentences
        parts.append(rng.choice(spec["detail"]))
    if spec["closing"] and rng.random() < 0.45:
        parts.append(rng.choice(spec["closing"]))
    if not signed:
        parts = [p.replace(", {name}", "") for p in parts]
    return " ".join(_fill(_given_only(p, ctx, prompt), ctx) for p in parts if p)


def bad_reply(rng: random.Random, issue: str, ctx: dict[str, str]) -> tuple[str, str]:
    """(failure mode, text): refusal_short / refusal_long / rambling / vague, with overlapping lengths."""
    fields = {**ctx, "issue": ISSUES[issue]["phrase"], "topic": ISSUES[issue]["topic"], "shop": SHOP}
    mode = rng.choices(list(MODES), weights=list(MODES.values()))[0]
    pieces = T["rejected"][mode]
    if mode.startswith("refusal"):
        text = rng.choice(pieces)
    elif mode == "rambling":
        picked = rng.sample(pieces, rng.randint(3, 6))
        repeat = rng.choice(picked)
        picked.insert(rng.randint(1, len(picked)), repeat)  # the repetition small models fall into
        text = " ".join(picked)
    else:
        text = " ".join(rng.sample(pieces, rng.randint(2, 5)))
    return mode, _fill(text, fields)


class Drawn(NamedTuple):
    issue: str
    prompt: str
    ctx: dict[str, str]
    remedies: list[str] | None
    signed: bool


def _unique_prompts(rng: random.Random, n: int, seen: set[str]) -> list[Drawn]:
    out: list[Drawn] = []
    issues = sorted(ISSUES)
    while len(out) < n:
        issue = issues[len(out) % len(issues)] if rng.random() < 0.7 else rng.choice(issues)
        ctx = _ctx(rng)
        prompt, remedies, signed = make_prompt(rng, issue, ctx)
        if prompt in seen:
            continue
        seen.add(prompt)
        out.append(Drawn(issue, prompt, ctx, remedies, signed))
    return out


def build_rows(seed: int = SEED) -> dict[str, list[dict[str, str]]]:
    """The three example files as row lists (same seed, same rows)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    demos = [
        {"prompt": d.prompt, "completion": good_reply(rng, d.issue, d.ctx, d.remedies, d.signed, d.prompt)}
        for d in _unique_prompts(rng, N_DEMOS, seen)
    ]
    prefs = []
    for d in _unique_prompts(rng, N_PREFS, seen):
        _, rejected = bad_reply(rng, d.issue, d.ctx)
        chosen = good_reply(rng, d.issue, d.ctx, d.remedies, d.signed, d.prompt)
        prefs.append({"prompt": d.prompt, "chosen": chosen, "rejected": rejected})
    prompts = [
        {"prompt": d.prompt} if at_fault(d.issue) else {"prompt": d.prompt, "criteria": NOT_AT_FAULT_CRITERIA}
        for d in _unique_prompts(rng, N_PROMPTS, seen)
    ]
    edge = edge_demos(seen)  # after every templated draw: the RNG stream is the same as without them
    return {"demos": demos, "edge_demos": edge, "prefs": prefs, "prompts": prompts}


def edge_demos(seen: set[str] | None = None) -> list[dict[str, str]]:
    """The hand-written edge-case demonstrations, in templates.yaml order; a prompt already in ``seen``
    (the templated prompts) or repeated raises ValueError (prompts stay unique within and across files)."""
    seen = set() if seen is None else seen
    rows = []
    for category, spec in EDGE_CASES.items():
        for pair in spec["pairs"]:
            if pair["prompt"] in seen:
                raise ValueError(f"edge case ({category}) repeats a prompt: {pair['prompt']!r}")
            seen.add(pair["prompt"])
            rows.append({"prompt": pair["prompt"], "completion": pair["completion"]})
    return rows


def write(out_dir: Path, seed: int = SEED) -> dict[str, int]:
    """Write demos.jsonl, edge_demos.jsonl, prefs.jsonl and prompts.jsonl into ``out_dir``; returns row
    counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in build_rows(seed).items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out_dir / f"{name}.jsonl").write_text(text, encoding="utf-8")
        counts[name] = len(rows)
    return counts


def _words(text: str) -> int:
    return len(text.split())


def length_stats(prefs: list[dict[str, str]]) -> dict[str, float]:
    """Share of pairs where chosen is longer, and mean word counts (length must not be the signal)."""
    longer = sum(_words(r["chosen"]) > _words(r["rejected"]) for r in prefs)
    n = len(prefs)
    return {
        "chosen_longer": longer / n,
        "mean_chosen_words": sum(_words(r["chosen"]) for r in prefs) / n,
        "mean_rejected_words": sum(_words(r["rejected"]) for r in prefs) / n,
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    counts = write(out)
    stats = length_stats(build_rows()["prefs"])
    print(f"wrote {counts} to {out}; {', '.join(f'{k}={v:.2f}' for k, v in stats.items())}")


if __name__ == "__main__":
    main()
