"""The binding deployment gate (Play 5): thresholds from the signed spec, evidence from evaluations,
the gate owner's signature, promotion, and a tamper-evident decision log.

* :mod:`rlhfops.gate.thresholds` / :mod:`rlhfops.gate.verdict` -- pure: merge evaluation metas into
  evidence, check every threshold (``evaluate_gate``).
* :mod:`rlhfops.gate.decide` -- on a workspace: ``gate_evaluate``, ``gate_sign``, ``promote``,
  ``deployed``.
* :mod:`rlhfops.gate.log` -- the append-only, hash-chained decision log and ``verify``.

See docs/gate.md.
"""
