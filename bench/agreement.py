"""Benchmark: Krippendorff's alpha, rlhfops vs the ``krippendorff`` package, in one run.

Data: 200 raters x 20,000 items, ratings 1..5 (each rater gives the item's "true" value with probability
0.6, else a uniform random value), 90% of the cells missing (NaN), seeded. For each level (nominal,
interval) the two implementations run interleaved A, B, A, B ... for ``--rounds`` rounds after one
warm-up call each, on the same float array. Prints one JSON line per level:

``{"bench": "agreement", "level": ..., "rlhfops_s": median, "krippendorff_s": median,
"ratio": krippendorff_s / rlhfops_s, "alpha_rlhfops": ..., "alpha_krippendorff": ...}``

and exits non-zero if the two alphas differ by more than 1e-9. ratio >= 1 means rlhfops is at least
as fast.

Run: ``.venv/bin/python bench/agreement.py [--raters 200] [--items 20000] [--missing 0.9] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import krippendorff
import numpy as np

from rlhfops.annotate.agreement import krippendorff_alpha


def make_data(raters: int, items: int, missing: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=items)
    noise = rng.integers(1, 6, size=(raters, items))
    x = np.where(rng.random((raters, items)) < 0.6, truth, noise).astype(np.float64)
    x[rng.random((raters, items)) < missing] = np.nan
    return x


def _timed(fn) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, float(value)


def run(level: str, x: np.ndarray, rounds: int) -> dict:
    ours = lambda: krippendorff_alpha(x, level)  # noqa: E731
    theirs = lambda: krippendorff.alpha(reliability_data=x, level_of_measurement=level)  # noqa: E731
    ours(), theirs()  # warm-up (imports, page faults)
    t_ours, t_theirs, a_ours, a_theirs = [], [], 0.0, 0.0
    for _ in range(rounds):
        dt, a_ours = _timed(ours)
        t_ours.append(dt)
        dt, a_theirs = _timed(theirs)
        t_theirs.append(dt)
    med_ours, med_theirs = statistics.median(t_ours), statistics.median(t_theirs)
    return {
        "bench": "agreement",
        "level": level,
        "rlhfops_s": round(med_ours, 4),
        "krippendorff_s": round(med_theirs, 4),
        "ratio": round(med_theirs / med_ours, 2),
        "alpha_rlhfops": a_ours,
        "alpha_krippendorff": a_theirs,
        "rounds": rounds,
        "shape": list(x.shape),
        "missing": round(float(np.isnan(x).mean()), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raters", type=int, default=200)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--missing", type=float, default=0.9)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--levels", default="nominal,interval")
    args = ap.parse_args()
    x = make_data(args.raters, args.items, args.missing)
    ok = True
    for level in args.levels.split(","):
        result = run(level, x, args.rounds)
        print(json.dumps(result), flush=True)
        ok &= abs(result["alpha_rlhfops"] - result["alpha_krippendorff"]) <= 1e-9
    if not ok:
        print("alphas differ between rlhfops and krippendorff", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
