"""Evaluation: generation on suites, red-team pass rates, success criteria, side-by-side win rates with
confidence intervals (position bias controlled by swapping), reward-hacking checks and KL to a reference.

``rlhfops.evaluate.stats`` (pure: win rates, intervals, swap combination), ``.sbs`` (judging pairs in
both orders), ``.measure`` (red team, over-refusal, success criteria), ``.hacking`` (alarms),
``.generation`` (responses and KL through the engine), ``.run`` (one evaluation -> result + artifact).
"""
