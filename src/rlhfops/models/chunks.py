"""Row chunks for functions of full-vocabulary logits: at most ``LOGIT_CHUNK_POSITIONS`` positions' logits
exist at once.

Log-probs of chosen tokens need the logits [rows, positions, vocab] only long enough to read one number
per position; computed for every row at once they are the largest tensors of an evaluation (32 replies of
64 tokens x the bundled model's 49,152-token vocabulary: 400 MB of float32, and as much again for the
log-softmax or logsumexp temporaries). Each row's values depend on that row alone, so chunks of rows give
the same numbers bit for bit (tested) with a fraction of the memory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: positions (rows x width) whose logits exist at once: 512 x 49,152 float32 = 100 MB for the bundled model
LOGIT_CHUNK_POSITIONS = 512


def in_row_chunks(
    fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, positions: int | None = None
) -> torch.Tensor:
    """``fn(*tensors)``, computed on chunks of rows (the first dimension) of ``positions // width`` rows
    (at least one; ``positions`` defaults to :data:`LOGIT_CHUNK_POSITIONS`) and concatenated. ``tensors``
    share their first two dimensions [rows, width, ...]; ``fn`` must treat rows independently (a per-row
    log-softmax, logsumexp or gather does)."""
    rows, width = tensors[0].shape[:2]
    step = max(1, (positions or LOGIT_CHUNK_POSITIONS) // max(int(width), 1))
    if step >= rows:
        return fn(*tensors)
    return torch.cat([fn(*(t[i : i + step] for t in tensors)) for i in range(0, rows, step)])
