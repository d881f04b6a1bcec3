"""Output files: written atomically, and one helper that turns a failed write into one line.

Every output rlhfops writes for a user (data files, the preference and demonstration exports, the gate
report, production-log batches) goes through :func:`atomic_output`: the content is written to a
temporary file in the target's directory, flushed to disk, and only then renamed over the target with
:func:`os.replace`. A failure at any point removes the temporary file, so the target is either the old
file (or absent) or the complete new one, never half-written.

A write the operating system refuses (a read-only directory, a full disk, a quota) becomes an
:class:`OutputError` from :func:`output_error`: one line naming the file, the reason and its errno name,
e.g. ``out/prefs.jsonl: cannot write: No space left on device (ENOSPC); free some space and run it
again; nothing was written``. The CLI entry point uses the same helper for such errors raised anywhere
else (e.g. a training run directory), so no command shows a traceback for them.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlhfops.errors import UserError

# errno -> what the user can do about it; only these are reported as a failed write (others propagate)
WRITE_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "free some space and run it again",
    errno.EDQUOT: "free some space (disk quota) and run it again",
    errno.EFBIG: "the file is larger than this file system allows; write it elsewhere",
    errno.EROFS: "the file system is read-only; write it elsewhere",
    errno.EACCES: "you may not write there; fix the permissions or write it elsewhere",
    errno.EPERM: "you may not write there; fix the permissions or write it elsewhere",
}


class OutputError(UserError):
    """An output file could not be written (read-only directory, full disk, ...); nothing was written."""


def is_write_failure(err: BaseException) -> bool:
    """True for an OSError whose errno means the system refused a write (see :data:`WRITE_ERRNOS`)."""
    return isinstance(err, OSError) and err.errno in WRITE_ERRNOS


def output_error(path: str | Path | None, err: OSError, atomic: bool = True) -> OutputError:
    """One-line :class:`OutputError` for a failed write of ``path`` (``err.filename`` when ``path`` is None).

    ``atomic``: the write went through :func:`atomic_output`, so the message can say nothing was written.
    """
    where = path if path is not None else (err.filename or "output")
    code = errno.errorcode.get(err.errno or 0, "")
    reason = err.strerror or str(err) or type(err).__name__
    named = f"{reason} ({code})" if code else reason
    hint = WRITE_ERRNOS.get(err.errno or 0, "check the file system and run it again")
    return OutputError(f"{where}: cannot write: {named}; {hint}{'; nothing was written' if atomic else ''}")


@contextmanager
def atomic_output(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on a clean exit it replaces ``target``, else it is removed.

    The parent directory is created if needed. An OSError of :data:`WRITE_ERRNOS` (raised while creating,
    writing, flushing or renaming) becomes one-line :class:`OutputError`; any other exception propagates
    unchanged. Either way the temporary file is gone and ``target`` is untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(fd)
    except OSError as err:
        if is_write_failure(err):
            raise output_error(target, err) from None
        raise
    tmp = Path(name)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_write_failure(err):
            raise output_error(target, err) from None  # type: ignore[arg-type]  # is an OSError
        raise


def fsync_path(path: Path) -> None:
    """fsync ``path``: a full disk often shows only here (delayed allocation), not at ``write()``. On a
    directory it makes a rename inside it durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` through :func:`atomic_output`; returns the target path."""
    with atomic_output(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return Path(target)
