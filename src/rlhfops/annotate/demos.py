"""Demonstrations (Play 2): prompts queued as ``demo`` items; experts write the ideal reply, the lead
accepts or rejects; accepted replies export to the SFT format ``{"prompt", "completion"}``.

One demonstration per (prompt, author). Editing an accepted or rejected demonstration puts it back to
``draft`` (the lead reviews the new text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rlhfops.annotate.queue import item_key
from rlhfops.annotate.tx import transaction
from rlhfops.data.formats import DemoIn, check_format, convert
from rlhfops.data.io import file_format, write_rows
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db

MAX_TEXT = 100_000


@dataclass(frozen=True)
class DemoView:
    id: int
    item_id: int
    prompt: str
    author: str
    text: str
    status: str
    reviewed_by: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def queue_prompts(ws: Any, prompts: list[str], batch: str) -> tuple[int, int]:
    """Queue demonstration prompts; returns (added, skipped as already queued)."""
    added = skipped = 0
    for p in prompts:
        key = item_key("demo", p, None, None)
        try:
            with transaction(ws) as s:
                if s.scalar(sa.select(m.Item.id).where(m.Item.key == key)) is not None:
                    skipped += 1
                    continue
                s.add(
                    m.Item(
                        key=key,
                        kind="demo",
                        prompt=p,
                        response_a=None,
                        response_b=None,
                        batch=batch,
                        k=1,
                        is_gold=False,
                        gold_answer=None,
                        calibration_round=None,
                        source_item_id=None,
                        meta={},
                        created_at=db.utcnow(),
                    )
                )
            added += 1
        except IntegrityError:
            skipped += 1
    if added:
        db.refresh_planner_stats(ws.engine, "items")
    return added, skipped


def demo_prompts(ws: Any) -> list[dict[str, Any]]:
    """Every demonstration prompt with its demonstrations' statuses."""
    with transaction(ws) as s:
        items = s.execute(
            sa.select(m.Item.id, m.Item.prompt).where(m.Item.kind == "demo").order_by(m.Item.id)
        ).all()
        demos = s.execute(sa.select(m.Demonstration.item_id, m.Demonstration.status)).all()
    statuses: dict[int, list[str]] = {}
    for item_id, status in demos:
        statuses.setdefault(item_id, []).append(status)
    return [{"item_id": i, "prompt": p, "statuses": sorted(statuses.get(i, []))} for i, p in items]


def _view(d: m.Demonstration, prompt: str) -> DemoView:
    return DemoView(d.id, d.item_id, prompt, d.author, d.text, d.status, d.reviewed_by)


def demos_for(ws: Any, item_id: int) -> tuple[str, list[DemoView]]:
    with transaction(ws) as s:
        item = s.get(m.Item, item_id)
        if item is None or item.kind != "demo":
            raise UserError(f"demonstration prompt {item_id}: not found")
        rows = s.scalars(
            sa.select(m.Demonstration).where(m.Demonstration.item_id == item_id).order_by(m.Demonstration.id)
        ).all()
        return item.prompt, [_view(d, item.prompt) for d in rows]


def save_demo(ws: Any, author: str, item_id: int, text: str) -> DemoView:
    """Write or edit ``author``'s demonstration for a prompt (status back to draft)."""
    text = text.strip()
    if not text:
        raise UserError("demonstration: the reply is empty")
    if len(text) > MAX_TEXT:
        raise UserError(f"demonstration: the reply has {len(text)} characters; at most {MAX_TEXT}")
    for _ in range(3):
        try:
            with transaction(ws) as s:
                item = s.get(m.Item, item_id)
                if item is None or item.kind != "demo":
                    raise UserError(f"demonstration prompt {item_id}: not found")
                row = s.scalar(
                    sa.select(m.Demonstration).where(
                        m.Demonstration.item_id == item_id, m.Demonstration.author == author
                    )
                )
                now = db.utcnow()
                if row is None:
                    row = m.Demonstration(
                        item_id=item_id,
                        author=author,
                        text=text,
                        status="draft",
                        created_at=now,
                        updated_at=now,
                    )
                    s.add(row)
                else:
                    row.text, row.status, row.updated_at = text, "draft", now
                    row.reviewed_by = row.reviewed_at = None
                s.flush()
                return _view(row, item.prompt)
        except IntegrityError:
            continue
    raise UserError("demonstration: saved concurrently elsewhere; reload and try again")


def review_demo(ws: Any, reviewer: str, demo_id: int, accept: bool) -> DemoView:
    with transaction(ws) as s:
        row = s.get(m.Demonstration, demo_id)
        if row is None:
            raise UserError(f"demonstration {demo_id}: not found")
        if row.author == reviewer:
            raise UserError(
                f"demonstration {demo_id}: {reviewer} wrote it; another reviewer must accept or reject it"
            )
        row.status = "accepted" if accept else "rejected"
        row.reviewed_by, row.reviewed_at = reviewer, db.utcnow()
        prompt = s.get_one(m.Item, row.item_id).prompt
        return _view(row, prompt)


def export_demos(
    ws: Any, out: Path, creator: str, register: bool = True, fmt: str = "rlhfops"
) -> tuple[int, str | None, str]:
    """Accepted demonstrations -> SFT rows ``{"prompt", "completion"}``; a ``demonstrations`` artifact.

    The file type follows ``out``'s extension (:func:`rlhfops.data.io.write_rows`, atomic). ``fmt``
    picks another tool's row format (:mod:`rlhfops.data.formats`); such a file is registered as a
    ``dataset`` artifact with ``meta.format``. Returns (rows written, artifact id, refusal summary).
    """
    file_format(out)
    check_format("demos", fmt)
    with transaction(ws) as s:
        rows = s.execute(
            sa.select(m.Item.prompt, m.Demonstration.text, m.Demonstration.id)
            .join(m.Item, m.Item.id == m.Demonstration.item_id)
            .where(m.Demonstration.status == "accepted")
            .order_by(m.Demonstration.item_id, m.Demonstration.id)
        ).all()

    if not rows:
        raise UserError(
            "demos export: no accepted demonstration yet; a domain-expert lead accepts them first"
        )
    out = Path(out)
    ins = [
        DemoIn([{"role": "user", "content": prompt}], text, f"demonstration {i}") for prompt, text, i in rows
    ]
    conv = convert("demos", fmt, ins)
    if not conv.rows:
        raise UserError(f"demos export --format {fmt}: no demonstration fits the format; {conv.summary()}")
    write_rows(out, conv.rows)
    art = None
    if register:
        kind = "demonstrations" if fmt == "rlhfops" else "dataset"
        meta = {"demos": len(conv.rows)} if fmt == "rlhfops" else {"format": fmt, "rows": len(conv.rows)}
        art = ws.register_artifact(kind, out, [ws.register_spec_version(creator)], creator, meta)
    return len(conv.rows), art, conv.summary()
