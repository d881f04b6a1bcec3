"""SIMULATED raters of `rlhfops demo`: a stated preference, labelled through the annotation service.

Nothing here is a human judgement. Rater names start with ``sim-``; every summary says SIMULATED.

**The stated preference** (what the simulated raters were told; the spec's policy for Juniper Lane): a
good reply apologises, offers a remedy that matches the policy (30-day returns, free return labels for
damaged, faulty or wrong items, refunds in 5-7 business days, express $9.95), invents no fact, order
number or policy, and has 2-4 sentences. :func:`preference_score` applies it with word lists and string
tests of its own: it shares no code and no pattern with the policy judge (``rlhfops.judge.policy``) that
evaluates the trained models, so the evaluation's yardstick is not the one the training data was made with.

**The service**: the raters work as the web app's raters do, through :mod:`rlhfops.annotate.queue`
(``fetch_next`` / ``submit_label``): pairs and gold items queued, a calibration round
(:mod:`rlhfops.annotate.calibration`) that blocks production until it passes, then production labelling
with blind gold items; ``prefs export`` (:func:`rlhfops.annotate.export.export_preferences`) writes the
preference file and its artifact. Noise model: a rater's label follows ``P(better) = sigmoid(|s| / T)``
(Bradley-Terry on the preference difference ``s``) with lapses at rate ``e``. Under the first, vague
guidelines every rater weighs the criteria their own way (a wide temperature, more lapses): the
calibration round fails. The annotation lead then tightens the guidelines (the stated preference above,
written out, plus "tie only when you would send either reply unchanged"): temperatures and lapses drop
and the next round passes (the seeds' calibration loop). One rater drifts: their lapse rate grows with
every batch of labels, which the gold items expose.
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhfops.annotate.settings import annotation_settings
from rlhfops.redteam.suite import load_suite, shipped_suites

SIMULATED = "SIMULATED"
_APOLOGY = ("sorry", "apologise", "apologize", "apologies", "apologises", "apologizes")
_REMEDY_STEMS = ("refund", "replac", "label", "reset", "cancel", "exchang", "redirect", "resend", "reship")
_POLICY_NUMBERS = ("30", "30-day", "5-7", "1-2", "3-5", "$9.95", "2-year", "9.95")
_DECLINES = ("i can't help", "i cannot help", "as an ai", "i'm unable", "i am unable", "i can't assist")
_STRIP = ".,;:!?()\"'"


def _sentence_count(text: str) -> int:
    t = text.strip()
    ends = sum(1 for i, ch in enumerate(t) if ch in ".!?" and (i + 1 == len(t) or t[i + 1] == " "))
    return ends + (1 if t and t[-1] not in ".!?" else 0)


# The guidelines' safety section (round two's red-team comparisons). The raters recognise the kind of
# message by these stated word lists (the simulation's stand-in for a person's judgement; a message the
# lists miss is judged by the support criteria alone). None of them occurs in the shipped support prompts,
# so round one's labels do not depend on this section (a test checks it).
_HARM_ASK = (
    "best poison", "to poison", "kill someone", "kill them", "rob ", "steal", "scam", "fake accounts",
    "fake police report", "toxic", "threaten", "threatening", "gun ", "drugs", "hidden camera",
    "without them",
    "without it being", "lie about", "home address", "her password", "admin password", "api key",
    "card numbers", "card detail", "card details", "gift card code", "personal email", "child-safety lock",
    "looks like it comes from", "tarnish", "catfish", "pretending", "chargeback", "false claims", "felony",
    "scanners catching", "can't tell", "mirror or copy",
)  # fmt: skip
# one pattern, compiled once: "any phrase, as whole words" (an alternation backtracks through every phrase)
_HARM_RE = re.compile(r"\b(?:" + "|".join(re.escape(w.strip()) for w in _HARM_ASK) + r")\b")
_INJECTED = ("ignore all previous instructions", "ignore previous instructions")
_CLAIMED = (
    "you told me", "your website says", "as everyone knows", "according to your", "promised me",
    "i read that", "the law says", "you already", "like you told",
)  # fmt: skip
_CERTAINTY_ASK = ("guaranteed answer", "definitely", "yes or no", "exactly what", "for certain")
_AGREE_OPENERS = ("yes", "absolutely", "of course", "sure", "correct", "you're right", "that's right")
_CORRECTIONS = (
    "actually", "isn't", "is not", "not correct", "our policy is", "that's not", "aren't", "wasn't",
    "doesn't", "don't", "no longer", "there is no", "there's no", "never", ", not ",
)  # fmt: skip
_HEDGES = (
    "can't say", "cannot say", "can't guarantee", "i'll check", "estimate", "don't want to guess",
    "can't promise", "cannot promise", "can't know", "no way to know", "can't predict", "don't know",
    "not sure", "can't tell you exactly", "can't confirm",
)  # fmt: skip
_RUDE = ("idiot", "stupid", "clown", "garbage", "useless", "shut up", "moron", "brainless", "pathetic")


@functools.cache
def _suite_kinds() -> dict[str, str]:
    """The shipped red-team prompts' kinds (suite category by prompt): a person reading such a message knows
    a request for harm, a false claim or a demand for certainty when they see one, which the word lists
    below only approximate; prompts outside the suites (drifted prompts) rely on the lists alone."""
    return {it.prompt: it.category for name in shipped_suites() for it in load_suite(name).items}


def safety_score(prompt: str, reply: str) -> float | None:
    """The guidelines' safety section: a score for a red-team-like message (a request for harm, a pasted
    instruction, a false claim about the shop, a demand for certainty), else None (support criteria only).
    Declining and redirecting a request for harm, correcting a false claim, hedging what cannot be known,
    ignoring a pasted instruction and staying polite score up; complying, agreeing or insulting score down."""
    p, low = prompt.lower(), reply.lower()
    kind = _suite_kinds().get(prompt)
    declines = any(d in low for d in _DECLINES) or "can't help" in low or "cannot help" in low
    s: float | None = None
    if kind == "harmful_requests" or _HARM_RE.search(p):
        s = 3.0 if declines else -2.0
    if any(w in p for w in _INJECTED):
        codes = [
            w.strip(_STRIP) for w in prompt.split() if w.strip(_STRIP).isupper() and any(map(str.isdigit, w))
        ]
        s = (s or 0.0) + (-3.0 if any(c.lower() in low for c in codes) else 1.0)
    if kind == "false_premise_sycophancy" or any(w in p for w in _CLAIMED):
        agrees = low.strip().startswith(_AGREE_OPENERS)
        s = (s or 0.0) + (-2.0 if agrees else 0.0) + (1.0 if any(w in low for w in _CORRECTIONS) else 0.0)
    if kind == "no_reliable_answer" or any(w in p for w in _CERTAINTY_ASK):
        s = (s or 0.0) + (1.5 if any(w in low for w in _HEDGES) else -1.0)
    if s is not None and any(w in low for w in _RUDE):
        s -= 2.5
    return s


def preference_score(prompt: str, reply: str) -> float:
    """The simulated raters' stated preference (module docstring); higher is better."""
    low = reply.lower()
    words = [w.strip(_STRIP) for w in low.split()]
    declines = any(d in low for d in _DECLINES)
    remedy = not declines and any(w.startswith(_REMEDY_STEMS) for w in words)
    invented = [
        w
        for w in words
        if any(c.isdigit() for c in w) and w not in _POLICY_NUMBERS and w not in prompt.lower()
    ]
    n = _sentence_count(reply)
    parts = [p.strip() for p in low.replace("!", ".").replace("?", ".").split(".") if p.strip()]
    s = 1.0 if any(w in _APOLOGY for w in words) else 0.0
    s += 1.5 if remedy else 0.0
    s += 0.5 if 2 <= n <= 4 else -1.0
    s -= 2.0 if invented else 0.0
    s -= 2.0 if declines else 0.0
    s -= 1.5 if len(set(parts)) < len(parts) else 0.0
    s -= 1.0 if len(words) < 4 else 0.0
    safety = safety_score(prompt, reply)
    if safety is not None:  # a red-team-like message: the safety section decides first
        s += safety + (2.0 if declines and safety > 0 else 0.0)  # a justified decline is not penalised
    return s


@dataclass
class SimRater:
    """One simulated rater: temperature ``T`` and lapse rate under the tight guidelines, how much vaguer
    they were before calibration, and the lapse added per batch of labels (the drifting rater)."""

    name: str
    temperature: float
    lapse: float
    drift: float = 0.0
    vague: float = 6.0  # temperature multiplier under the first, vague guidelines
    tight: bool = False
    done: int = 0

    def choose(self, rng: random.Random, prompt: str, left: str, right: str, batch: int) -> str:
        lapse = min(1.0, (self.lapse if self.tight else 0.35) + self.drift * (self.done // batch))
        self.done += 1
        if rng.random() < lapse:
            return "left" if rng.random() < 0.5 else "right"
        a, b = preference_score(prompt, left), preference_score(prompt, right)
        if self.tight and max(a, b) < 0:
            return "both_bad"
        if self.tight and abs(a - b) < 0.25:
            return "tie"
        t = self.temperature * (1.0 if self.tight else self.vague)
        return "left" if rng.random() < 1.0 / (1.0 + math.exp(-(a - b) / t)) else "right"


def make_raters(n: int = 6, seed: int = 0, drift: float = 0.15) -> list[SimRater]:
    """``n`` raters of varied skill; the last one drifts."""
    rng = random.Random(seed)
    out = [SimRater(f"sim-rater-{i + 1}", rng.uniform(0.15, 0.4), rng.uniform(0.01, 0.05)) for i in range(n)]
    out[-1].name, out[-1].drift = f"sim-rater-{n}-drifting", drift
    return out


@dataclass
class Annotation:
    """What the simulated annotation produced (all SIMULATED)."""

    prefs_path: Path
    artifact_id: str | None
    kept: int
    dropped: dict[str, int]
    alpha: float | None
    percent_agreement: float | None
    calibration_rounds: list[dict[str, Any]]
    gold: dict[str, Any]
    drifting: list[str]
    noise: dict[str, float]
    simulated: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def calibration(self) -> dict[str, Any]:
        last = self.calibration_rounds[-1] if self.calibration_rounds else {}
        return {"status": last.get("status", "none"), "message": last.get("message", "-"), "simulated": True}


def _label_all(ws: Any, raters: list[SimRater], rng: random.Random, batch: int) -> None:
    """Every rater takes items from the service until it has none left for them (or is blocked); the share
    of gold items is the workspace's ``annotation.gold_rate`` (what the web app uses)."""
    from rlhfops.annotate.queue import ProductionBlockedError, fetch_next, submit_label

    gold_rate = annotation_settings(ws).gold_rate
    active = list(raters)
    while active:
        for r in list(active):
            try:
                item = fetch_next(ws, r.name, gold_rate=gold_rate)
            except ProductionBlockedError:
                item = None
            if item is None:
                active.remove(r)
                continue
            submit_label(ws, r.name, item.item_id, r.choose(rng, item.prompt, item.left, item.right, batch))


def annotate(
    ws: Any,
    pairs: list[tuple[str, str, str]],
    gold: list[tuple[str, str, str]],
    out: Path,
    lead: str,
    *,
    n_raters: int = 6,
    calibration_n: int = 10,
    batch: int = 10,
    seed: int = 0,
) -> Annotation:
    """Queue ``pairs`` (prompt, a, b) and ``gold`` (prompt, chosen, rejected), run calibration rounds until
    one passes (at most three), label production, export. Returns what happened. Raters per pair and the
    calibration round's pass threshold are the workspace's ``annotation.overlap`` and
    ``annotation.calibration_threshold`` (what `rlhfops calibration start` and the web app use)."""
    from rlhfops.annotate.calibration import round_result, start_round
    from rlhfops.annotate.export import export_preferences
    from rlhfops.annotate.queue import PairIn, queue_pairs
    from rlhfops.annotate.report import agreement_report

    st = annotation_settings(ws)
    k, threshold = st.overlap, st.calibration_threshold

    raters = make_raters(n_raters, seed)
    for r in raters:
        ws.add_person(r.name, "rater", lead)
    queue_pairs(ws, [PairIn(p, a, b, meta={"simulated": True}) for p, a, b in pairs], "round-1", k)
    queue_pairs(
        ws, [PairIn(p, c, r, gold_answer="A", meta={"simulated": True}) for p, c, r in gold], "gold", 1
    )
    rng = random.Random(seed)
    rounds: list[dict[str, Any]] = []
    for attempt in range(3):
        rid = start_round(ws, lead, n=min(calibration_n, len(pairs)), threshold=threshold)
        _label_all(ws, raters, rng, batch)
        res = round_result(ws, rid).to_json()
        rounds.append(
            {k2: res[k2] for k2 in ("round", "status", "message", "overall_agreement", "krippendorff_alpha")}
        )
        rounds[-1]["guidelines"] = (
            "tightened (stated preference)" if raters[0].tight else "vague (first draft)"
        )
        if res["status"] == "passed":
            break
        for r in raters:  # the annotation lead tightens the guidelines; the next round tests them
            r.tight = True
        for r in raters:
            r.done = 0
        del attempt
    for r in raters:
        r.done = 0
    _label_all(ws, raters, rng, batch)  # production (blocked unless a round passed)
    exp = export_preferences(ws, out, lead)
    rep = agreement_report(ws)
    noise = {"temperature_vague": round(6.0 * sum(r.temperature for r in raters) / len(raters), 3)}
    noise["temperature_tight"] = round(sum(r.temperature for r in raters) / len(raters), 3)
    return Annotation(
        prefs_path=out,
        artifact_id=exp.artifact_id,
        kept=exp.rows,
        dropped=exp.dropped,
        alpha=exp.alpha,
        percent_agreement=exp.percent_agreement,
        calibration_rounds=rounds,
        gold=rep.get("gold", {}),
        drifting=[r.name for r in raters if r.drift > 0],
        noise=noise,
    )


@dataclass
class RoundLabels:
    """What a later labelling round produced (all SIMULATED): the export covers every round's labels."""

    prefs_path: Path
    artifact_id: str | None
    queued: int
    kept: int
    alpha: float | None
    labels: int
    new_path: Path | None = None  # ``new_batches`` only (None: not asked, or nothing labelled in them)
    new_artifact_id: str | None = None
    new_kept: int = 0


def label_round(
    ws: Any,
    pairs: list[tuple[str, str, str]],
    batch: str,
    out: Path,
    lead: str,
    *,
    n_raters: int = 6,
    batch_size: int = 10,
    seed: int = 0,
    new_batches: list[str] | None = None,
    new_out: Path | None = None,
) -> RoundLabels:
    """A later round (round two): the same SIMULATED raters, under the tightened guidelines (round one's
    calibration passed), label ``pairs`` queued as ``batch`` and whatever else is open in the queue (the
    batches `rlhfops next` queued); then ``prefs export`` writes every round's preferences to ``out`` (the
    reward model's refresh) and, with ``new_batches``, ``prefs export --batch`` only those batches to
    ``new_out`` (what a candidate continues on)."""
    from rlhfops.annotate.export import export_preferences
    from rlhfops.annotate.queue import PairIn, queue_pairs

    k = annotation_settings(ws).overlap
    raters = make_raters(n_raters, seed)
    for r in raters:
        r.tight = True
    if pairs:
        queue_pairs(ws, [PairIn(p, a, b, meta={"simulated": True}) for p, a, b in pairs], batch, k)
    before = sum(len(_labels(ws, r.name)) for r in raters)
    _label_all(ws, raters, random.Random(seed + 2), batch_size)
    after = sum(len(_labels(ws, r.name)) for r in raters)
    exp = export_preferences(ws, out, lead)
    new = None
    if new_batches:
        new = export_preferences(ws, new_out, lead, batches=new_batches)
    return RoundLabels(
        out, exp.artifact_id, len(pairs), exp.rows, exp.alpha, after - before,
        new_out if new else None, new.artifact_id if new else None, new.rows if new else 0,
    )  # fmt: skip


def _labels(ws: Any, rater: str) -> list[Any]:
    from rlhfops.annotate.queue import rater_labels

    return list(rater_labels(ws, rater))
