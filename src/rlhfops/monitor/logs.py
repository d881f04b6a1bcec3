"""The workspace's production-log artifacts: store an ingested file as Parquet, read records back for drift.

``rlhfops monitor ingest FILE`` calls :func:`ingest_to_workspace`: every row of FILE is checked first
(:func:`rlhfops.monitor.ingest.validate_production_file`; a bad row raises one line with its row number
and nothing is written), then the records stream into a Parquet file in a temporary directory (one row
group per batch, so memory is bounded by the batch size), which is stored in the artifact store under its
content hash. The artifact has the store kind ``dataset`` and ``meta.monitor = "production-log"`` (the
store's kinds are owned by the workspace; :data:`LOG_KIND` / :data:`LOG_TAG` name them here), with the
row count, models, time range and the original file name. Ingesting the same content twice stores it
once (same id) and says so.

When a record's ``model_id`` is an artifact id (or a unique prefix of one) of a model in the workspace,
that model becomes a parent of the batch, so lineage shows which model produced the traffic.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlhfops.monitor.ingest import IngestSummary, ParquetSink, ProductionRecord, ingest_production_file

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace
    from rlhfops.workspace.store import ArtifactRecord

LOG_KIND = "dataset"  # store kind of a production-log batch
LOG_TAG = "production-log"  # meta["monitor"] of a production-log batch
MODEL_KINDS = ("sft-model", "dpo-model", "ppo-model", "base-model")


@dataclass(frozen=True)
class IngestResult:
    """A stored batch: its artifact id, the summary of its rows, and whether it was already stored."""

    artifact_id: str
    summary: IngestSummary
    already_stored: bool
    model_parents: list[str]

    def to_json(self) -> dict[str, Any]:
        s = self.summary
        return {
            "artifact_id": self.artifact_id,
            "rows": s.rows,
            "models": s.models,
            "time_min": s.time_min.isoformat() if s.time_min else None,
            "time_max": s.time_max.isoformat() if s.time_max else None,
            "already_stored": self.already_stored,
            "model_parents": self.model_parents,
        }


def _model_parents(ws: Workspace, model_ids: list[str]) -> list[str]:
    """Artifact ids of workspace models named by the records' model_id (ids or unique prefixes)."""
    models = ws.artifacts()
    out = []
    for mid in model_ids:
        ref = mid.strip().lower()
        if len(ref) < 4:
            continue
        hits = [a.id for a in models if a.kind in MODEL_KINDS and a.id.startswith(ref)]
        if len(hits) == 1:
            out.append(hits[0])
    return out


def summary_meta(summary: IngestSummary, source_name: str) -> dict[str, Any]:
    """The artifact meta of a production-log batch."""
    return {
        "monitor": LOG_TAG,
        "source": source_name,
        "rows": summary.rows,
        "models": summary.models,
        "time_min": summary.time_min.isoformat() if summary.time_min else None,
        "time_max": summary.time_max.isoformat() if summary.time_max else None,
        "with_task_completed": summary.with_task_completed,
        "with_review_minutes": summary.with_review_minutes,
        "with_client_flag": summary.with_client_flag,
    }


def ingest_to_workspace(
    ws: Workspace, path: str | Path, creator: str, batch_size: int = 2000, source_name: str | None = None
) -> IngestResult:
    """Validate every row of ``path``, then store the file's records as one production-log artifact.

    Nothing is written (no file, no database row) when any row is bad: the DataError names the first
    bad row (``file:line: field: what``) and how many rows are bad.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="rlhfops-ingest-") as tmp:
        target = Path(tmp) / f"{_stem(path.name)}.production.parquet"
        with ParquetSink(target) as sink:
            summary = ingest_production_file(path, sink, batch_size=batch_size)
        parents = _model_parents(ws, sorted(summary.models))
        existing = ws.find_by_content(target)
        aid = ws.register_artifact(
            LOG_KIND, target, parents, creator, summary_meta(summary, source_name or path.name)
        )
    return IngestResult(aid, summary, existing is not None, parents)


def _stem(name: str) -> str:
    for ext in (".jsonl.gz", ".jsonl", ".ndjson", ".csv"):
        if name.lower().endswith(ext):
            return name[: -len(ext)] or "log"
    return name or "log"


def log_artifacts(ws: Workspace) -> list[ArtifactRecord]:
    """The production-log batches of the workspace, oldest first."""
    return [a for a in ws.artifacts(LOG_KIND) if a.meta.get("monitor") == LOG_TAG]


def read_log(path: Path, since: datetime | None = None) -> Iterator[ProductionRecord]:
    """The records of one stored batch (Parquet), row group by row group; ``since`` drops older rows."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    for i in range(pf.num_row_groups):
        for row in pf.read_row_group(i).to_pylist():
            t = row["time"]
            if since is not None and t < since:
                continue
            yield ProductionRecord(
                prompt=row["prompt"],
                response=row["response"],
                model_id=row["model_id"],
                time=t,
                id=row["id"],
                task_completed=row["task_completed"],
                review_minutes=row["review_minutes"],
                client_flag=row["client_flag"],
                line=row["line"],
            )


def production_records(
    ws: Workspace,
    since: datetime | None = None,
    model_id: str | None = None,
    last_rows: int | None = None,
    last_span: timedelta | None = None,
) -> tuple[list[ProductionRecord], list[str], int]:
    """Stored production records sorted by time, the ids of the batches they came from, and how many
    records matched before ``last_rows`` / ``last_span`` cut them.

    ``since``: only rows at or after it; ``model_id``: only that model's rows; ``last_rows``: only (about)
    the newest N rows; ``last_span``: only rows within that span of the newest row. The cut is found from
    the time column alone, so only the kept rows are turned into records (memory follows what is kept,
    not the whole history).
    """
    arts = log_artifacts(ws)
    stamps = [_stamps(a.path, model_id) for a in arts]
    cutoff = since
    times = np.sort(np.concatenate(stamps)) if stamps else np.zeros(0, dtype=np.int64)
    if since is not None:
        times = times[times >= _us(since)]
    total = len(times)
    if total and last_rows is not None and total > last_rows:
        cutoff = _from_us(int(times[total - last_rows]))
    if total and last_span is not None:
        start = _from_us(int(times[-1])) - last_span
        cutoff = start if cutoff is None else max(cutoff, start)
    records: list[ProductionRecord] = []
    ids = []
    for art in arts:
        before = len(records)
        records.extend(r for r in read_log(art.path, cutoff) if model_id is None or r.model_id == model_id)
        if len(records) > before:
            ids.append(art.id)
    records.sort(key=lambda r: r.time)
    return records, ids, total


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _stamps(path: Path, model_id: str | None) -> np.ndarray:
    """Times of a batch's rows (of ``model_id`` if given) as int64 microseconds since the epoch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(str(path), columns=["time", "model_id"])
    if model_id is not None:
        table = table.filter(pc.equal(table.column("model_id"), model_id))
    return table.column("time").cast(pa.int64()).to_numpy()
