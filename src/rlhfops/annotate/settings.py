"""Annotation settings: the ``annotation:`` section of ``rlhfops.yaml`` (all optional)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlhfops.config import settings_section, validate_section


class AnnotationSettings(BaseModel):
    """Overlap, gold rate, calibration size and thresholds of the annotation service."""

    model_config = ConfigDict(extra="forbid")

    overlap: int = Field(3, ge=1, le=50, description="Raters per comparison item (k).")
    gold_rate: float = Field(
        0.1, ge=0.0, le=0.5, description="Share of a rater's items that are gold items (known answers)."
    )
    calibration_size: int = Field(50, ge=2, description="Pairs in a calibration round (the same for all).")
    calibration_threshold: float = Field(
        0.65,
        ge=0.0,
        le=1.0,
        description="Overall percent agreement a calibration round needs; below it production labelling "
        "is blocked until a new round passes.",
    )
    agreement_warning: float = Field(
        0.70, ge=0.0, le=1.0, description="Overall agreement under which the agreement page warns."
    )
    turnover_flag: float = Field(
        0.30, ge=0.0, le=1.0, description="Rater turnover above which the agreement page flags it."
    )


def annotation_settings(ws: Any) -> AnnotationSettings:
    """The workspace's ``annotation:`` settings (defaults when the section is absent)."""
    raw = settings_section(ws.settings, "annotation")
    return validate_section(AnnotationSettings, raw, "rlhfops.yaml", prefix="annotation.")
