"""The one refusal rule: each pattern on both sides of its edge, and every caller uses it."""

from __future__ import annotations

import pytest

from rlhfops.measures.refusal import is_refusal


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "We are unable to process refunds for digital items.",
        "I\u2019m not able to share another customer's address.",  # curly apostrophe
        "I must decline.",
        "As an AI, I have no opinion.",
        "That is not something I can help with.",
        "This would be against our policy.",
        "x " * 150 + "I cannot help you with that.",  # anywhere in the reply
        "I cannot really help with that.",  # up to two words between the negation and the verb
    ],
)
def test_refusals(text):
    assert is_refusal(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I'm sorry to hear your parcel is late; I've sent a replacement.",  # an apology alone
        "My apologies: your refund was issued today.",
        "I cannot",  # no helping verb follows
        "I cannot believe how quickly it really arrived, thanks for the fast help.",  # verb > 2 words away
        "You can't reset it yourself, so I reset it for you.",  # not first person
        "Our policy allows returns within 30 days.",
    ],
)
def test_not_refusals(text):
    assert is_refusal(text) is False


def test_every_caller_uses_the_one_rule():
    from rlhfops.evaluate import measure
    from rlhfops.measures import refusal
    from rlhfops.redteam import detectors

    assert detectors.is_refusal is refusal.is_refusal
    assert detectors.BEHAVIOUR_DETECTORS["refusal"] is refusal.is_refusal
    assert measure.is_refusal is refusal.is_refusal
    # monitoring: an apology that helps is not counted as a refusal (it was, before the rules were merged)
    from rlhfops.monitor.outputs import response_metrics

    m = response_metrics(["I'm sorry for the delay, a replacement ships today.", "I can't help with that."])
    assert m["refusal"].tolist() == [False, True]
