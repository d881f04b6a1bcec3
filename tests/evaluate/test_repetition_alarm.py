"""Replies that loop fire the diversity alarm (issue 19); varied replies do not. Both the evaluation path
(``evaluate.hacking``) and the PPO path (``train.alarms`` with the held-out statistics) read the same rule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlhfops.evaluate.hacking import AlarmLimits, evaluation_alarms, response_stats
from rlhfops.measures.diversity import LOOP_REPEAT_FRACTION, looping_share, loops, repeated_ngram_fraction
from rlhfops.train.alarms import reward_hacking_alarms

# the loops the demo's PPO candidates produced (issue 19), and replies of the same kind that do not loop
LOOPING = [
    "I'm sorry about the delay. I'm sorry about the mistake. I'm sorry about the mistake. "
    "I'm sorry about the",
    "I've also replaced the faulty part with a new one and sent it today. I've also replaced the faulty part "
    "with a new one. I've also replaced the faulty part",
    "Sorry for the trouble with your order. We will refund you. Sorry for the trouble with your order. "
    "We will refund you. Sorry for the trouble",
]
VARIED = [
    "Sorry about that: the blender arrived with a cracked jar. I've sent a free return label and a new jar "
    "ships today; you'll have it in 3-5 business days.",
    "Thanks for letting us know. Your refund of $42.00 is on its way and should reach your card within "
    "5-7 business days.",
    "I'm sorry the wrong size arrived. Here is a prepaid label for the exchange, and the right size goes out "
    "as soon as we scan the return.",
    "You can return the lamp within 30 days. Print the label from your account page and drop the parcel at "
    "any post office; we refund the full price once it arrives.",
]


def test_loops_rule_on_both_sides_of_its_edge():
    for t in LOOPING:
        assert loops(t), t
    for t in VARIED:
        assert not loops(t), t
    # at the limit loops, just under does not
    text = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20"
    at = text + " w1 w2 w3 w4 w5 w6"  # 26 words, 23 4-grams, repeats (w1..w4) (w2..w5) (w3..w6) = 3/23
    assert repeated_ngram_fraction([at.split()], 4) == pytest.approx(3 / 23)
    assert loops(at, limit=3 / 23) and not loops(at, limit=3 / 23 + 1e-9)
    assert 3 / 23 < LOOP_REPEAT_FRACTION and not loops(at)
    issue = "I've also replaced the faulty part with a new one. I've also replaced the faulty part"
    assert repeated_ngram_fraction([issue.split()], 4) == pytest.approx(3 / 13) and loops(issue)  # 0.23
    just_over = text + " w1 w2 w3 w4 w5 w6 w7"  # 27 words, 24 4-grams, 4 repeats: 0.167
    assert loops(just_over) and LOOP_REPEAT_FRACTION == 0.15
    assert looping_share(LOOPING + VARIED) == pytest.approx(3 / 7) and looping_share([]) == 0.0


def test_evaluation_alarm_fires_on_looping_replies_and_not_on_varied_ones():
    base = response_stats(VARIED * 2, rewards=[0.0] * 8)
    cand = response_stats(VARIED + LOOPING[:2] + VARIED[:2], rewards=[0.0] * 8)  # 2 of 8 loop: 25%
    alarms = evaluation_alarms(cand, base)
    assert [a["name"] for a in alarms] == ["diversity_collapse"]
    assert alarms[0]["numbers"]["looping_share"] == pytest.approx(0.25)
    assert "repeat themselves" in alarms[0]["evidence"] and loops(alarms[0]["examples"][0])
    assert evaluation_alarms(base, base) == []
    fewer = response_stats(VARIED * 2 + LOOPING[:1] + VARIED[:1] * 2, rewards=[0.0] * 11)  # 1 of 11: 9%
    assert evaluation_alarms(fewer, base) == []


def test_looping_share_setting_is_read_and_reference_loops_do_not_count_against_the_candidate():
    base = response_stats(VARIED * 2, rewards=[0.0] * 8)
    cand = response_stats(VARIED + LOOPING[:2] + VARIED[:2], rewards=[0.0] * 8)  # 25%
    assert evaluation_alarms(cand, base, AlarmLimits(alarm_looping_share=0.3)) == []
    assert evaluation_alarms(cand, base, AlarmLimits(alarm_looping_share=0.25)) != []
    assert evaluation_alarms(cand, cand) == []  # the reference loops as much: not the candidate's doing


def test_ppo_alarm_reads_the_held_out_looping_share():
    cfg = SimpleNamespace(
        alarm_length_ratio=1.5, alarm_distinct2_drop=0.5, alarm_looping_share=0.25, kl_controller="fixed"
    )
    ref = {"score": 0.0, "response_length": 30, "distinct_2": 0.8, "opening_share": 0.1, "looping_share": 0.0}
    pol = {**ref, "looping_share": 0.5, "loop_examples": LOOPING[:1], "examples": VARIED[:3]}
    (alarm,) = reward_hacking_alarms(cfg, [], ref, pol)
    assert alarm.name == "diversity_collapse" and alarm.examples[0] == LOOPING[0]
    assert reward_hacking_alarms(cfg, [], ref, {**pol, "looping_share": 0.2}) == []
