"""The ``policy`` section of a task spec: the facts a reply must state correctly (read by the policy judge).

Optional. When present, :class:`rlhfops.judge.policy.PolicyJudge` checks each reply against it: an apology,
a remedy word, ``min_sentences``-``max_sentences`` sentences, and no statement that contradicts a fact,
invents an identifier (an order number the customer never gave) or uses a ``forbidden`` phrase. When
``criterion`` names a success-criteria behaviour, ``rlhfops eval run`` measures that behaviour with the
policy judge instead of a surface detector.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PolicyFact(_Part):
    """One stated fact: the words that mark a sentence as about it, and the quantities it may state."""

    name: str = Field(..., min_length=1, description="Short name, e.g. 'refund time'.")
    about: list[str] = Field(
        ...,
        min_length=1,
        description="Words or phrases (whole words, any case) that make a sentence about it.",
    )
    values: list[str] = Field(
        ...,
        min_length=1,
        description="The correct quantities, as the policy states them: '5-7 business days', '$9.95'.",
    )


class Policy(_Part):
    """What a reply must say correctly; the policy judge's rules (``rlhfops.judge.policy``)."""

    criterion: str | None = Field(
        None,
        description="The success-criteria behaviour the policy judge measures (a reply passes when it "
        "apologises, offers a remedy, states no wrong fact and has the allowed number of sentences).",
    )
    apology: list[str] = Field(
        ["sorry", "apologise", "apologize", "apologies", "apologises", "apologizes"],
        description="Words that count as an apology (whole words, any case).",
    )
    remedies: list[str] = Field(
        ..., min_length=1, description="Words or phrases naming a concrete remedy: 'refund', 'return label'."
    )
    facts: list[PolicyFact] = Field(default_factory=list, description="The policy facts a reply may state.")
    identifiers: list[str] = Field(
        default_factory=list,
        description="Regexes of identifiers (order numbers) a reply may only repeat from the customer's "
        "message.",
    )
    forbidden: list[str] = Field(
        default_factory=list,
        description="Phrases (any case) that state a policy the business does not have: 'restocking fee'.",
    )
    min_sentences: int = Field(2, ge=1, description="Fewest sentences a good reply has.")
    max_sentences: int = Field(4, ge=1, description="Most sentences a good reply has.")

    @field_validator("identifiers")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for rx in value:
            try:
                re.compile(rx)
            except re.error as err:
                raise ValueError(f"identifiers: invalid regex {rx!r} ({err})") from None
        return value

    @model_validator(mode="after")
    def _sentence_range(self) -> Policy:
        if self.min_sentences > self.max_sentences:
            raise ValueError(
                f"min_sentences {self.min_sentences} is above max_sentences {self.max_sentences}"
            )
        return self
