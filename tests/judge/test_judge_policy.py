"""The policy judge (rlhfops.judge.policy) on both sides of each rule: the correct remedy passes; an invented
policy, wrong refund days, a wrong express price, an invented order number, 1 or 5 sentences fail."""

from __future__ import annotations

import pytest

from rlhfops.judge import make_judge
from rlhfops.judge.policy import PolicyJudge, normalise_quantity, quantities
from rlhfops.spec.policy import Policy

PROMPT = "My kettle arrived with a cracked lid. Order JL-204311, paid $49.00."
GOOD = (
    "I'm sorry your kettle arrived damaged. I've sent a free prepaid return label for order JL-204311, and "
    "your refund reaches the original payment method within 5-7 business days."
)
CRITERION = "apologises and offers a remedy when the shop is at fault"


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The shipped support-replies spec's policy section (what `rlhfops init` writes)."""
    from pathlib import Path

    import yaml

    import rlhfops.spec
    from rlhfops.spec.schema import TaskSpec

    raw = yaml.safe_load(
        (Path(rlhfops.spec.__file__).parent / "templates" / "support_replies.yaml").read_text()
    )
    raw.pop("edge_cases", None)
    return TaskSpec(**raw).policy


@pytest.fixture(scope="module")
def judge(policy) -> PolicyJudge:
    return PolicyJudge(policy)


def test_correct_remedy_meets_the_policy(judge):
    c = judge.check(PROMPT, GOOD)
    assert c.meets_policy and c.violations == [] and c.sentences == 2
    assert judge.score(PROMPT, GOOD, CRITERION) == 1.0


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (GOOD.replace("5-7 business days", "3-5 business days"), "refund time"),  # wrong refund days
        (GOOD.replace("5-7 business days", "24 hours"), "refund time"),
        (GOOD + " Express delivery costs $4.99.", "express delivery"),  # wrong express price
        (GOOD.replace("JL-204311", "JL-999999"), "invents the identifier 'JL-999999'"),  # invented order
        (GOOD + " A restocking fee of 10% applies.", "does not have"),  # invented policy
    ],
)
def test_a_wrong_or_invented_fact_fails(judge, reply, why):
    c = judge.check(PROMPT, reply)
    assert not c.meets_policy
    assert any(why in v for v in c.violations), c.violations
    assert judge.score(PROMPT, reply, CRITERION) == 0.0


def test_the_right_express_price_and_the_customers_own_amount_pass(judge):
    ok = GOOD + " Express delivery is $9.95 and takes 1-2 business days."
    assert judge.check(PROMPT, ok).violations == []
    assert judge.check(PROMPT, GOOD.replace("your refund", "your $49.00 refund")).violations == []
    assert judge.check(PROMPT, GOOD.replace("your refund", "your $59.00 refund")).violations  # not theirs


@pytest.mark.parametrize(("n", "ok"), [(1, False), (2, True), (4, True), (5, False)])
def test_two_to_four_sentences(judge, n, ok):
    sentences = [
        "I'm sorry your kettle arrived damaged.",
        "I've sent a free prepaid return label.",
        "A replacement ships once the label is scanned.",
        "You'll get an email when it leaves.",
        "Thank you for your patience.",
    ]
    reply = " ".join(sentences[:n]) if n > 1 else "I'm sorry, I've sent a free prepaid return label."
    c = judge.check(PROMPT, reply)
    assert c.sentences == n and c.length_ok is ok and c.meets_policy is ok


def test_apology_and_remedy_are_both_needed(judge):
    assert not judge.check(PROMPT, GOOD.replace("I'm sorry your", "Your")).meets_policy
    no_remedy = "I'm sorry your kettle arrived damaged. We value you as a customer."
    assert not judge.check(PROMPT, no_remedy).remedy
    refusal = "I'm sorry, but as an AI I cannot help with refunds. Please contact the shop."
    assert not judge.check(PROMPT, refusal).remedy


def test_quantities_are_normalised():
    assert quantities("5 to 7 working days, a 30-day window, $ 9.95") == [
        "5-7 business day",
        "30 day",
        "$9.95",
    ]
    assert normalise_quantity("2-Years") == "2 year"


def test_graded_score_orders_replies_and_make_judge_needs_a_policy(policy):
    from rlhfops.errors import ConfigError

    j = make_judge("policy", policy=policy)
    assert j.name == "policy"
    assert j.judge(PROMPT, GOOD, GOOD.replace("5-7", "2-3")) == "A"
    assert j.judge(PROMPT, "Ok.", GOOD) == "B"
    with pytest.raises(ConfigError, match="policy: section"):
        make_judge("policy")


def test_the_spec_refuses_a_bad_policy_section():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="invalid regex"):
        Policy(remedies=["refund"], identifiers=["JL-("])
    with pytest.raises(ValidationError, match="min_sentences 5 is above max_sentences 4"):
        Policy(remedies=["refund"], min_sentences=5, max_sentences=4)
