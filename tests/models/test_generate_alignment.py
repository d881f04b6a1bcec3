"""The sampling loop: log-probs from generation equal those of the training forward pass (1e-5, float32),
with left padding and prompts of different lengths; EOS / pad masking; determinism per seed."""

from __future__ import annotations

import pytest
import torch

from rlhfops.models.generate import generate, left_pad, top_p_filter
from rlhfops.models.loading import load_causal_lm, load_tokenizer
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.ppo_model import ActorCritic, Reference
from rlhfops.train.ppo_rollout import full_attention_mask


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_tiny_model_dir(tmp_path_factory.mktemp("m") / "tiny", seed=3)
    return load_causal_lm(str(path)).eval(), load_tokenizer(str(path), padding_side="left")


PROMPTS = [[1, 60, 61, 62, 63, 64, 65, 66], [1, 70, 71], [1, 80, 81, 82, 83]]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generation_logprobs_match_training_forward(tiny, temperature):
    model, tok = tiny
    gen = torch.Generator().manual_seed(0)
    out = generate(
        model,
        PROMPTS,
        max_new_tokens=12,
        temperature=temperature,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        generator=gen,
    )
    attn = full_attention_mask(out)
    policy = ActorCritic(model, with_value=False)
    with torch.no_grad():
        pol = policy(out.sequences, attn, out.prompt_length, temperature, with_entropy=True)
    mask = out.response_mask.float()
    torch.testing.assert_close(pol.logps * mask, out.logprobs, rtol=1e-5, atol=1e-5)
    # the rollout uses the sampler's log-probs and entropies instead of a second forward pass
    torch.testing.assert_close(pol.entropy * mask, out.entropy, rtol=1e-5, atol=1e-5)
    ref = Reference(model, uses_lora=False).logps(out.sequences, attn, out.prompt_length, temperature)
    torch.testing.assert_close(ref * mask, out.logprobs, rtol=1e-5, atol=1e-5)


def test_eos_and_padding_masks(tiny):
    model, tok = tiny
    eos = tok.eos_token_id
    # Force EOS early by making it the argmax: greedy on a model whose bias favours EOS.
    with torch.no_grad():
        head = model.get_output_embeddings()
        saved = head.weight[eos].clone()
        head.weight[eos] += 5.0 * model.get_input_embeddings().weight.mean(0).sign()
    try:
        out = generate(
            model, PROMPTS, max_new_tokens=6, temperature=0.0, eos_token_id=eos, pad_token_id=tok.pad_token_id
        )
    finally:
        with torch.no_grad():
            head.weight[eos] = saved
    for i in range(len(PROMPTS)):
        ids = out.response_ids[i].tolist()
        m = out.response_mask[i].tolist()
        if eos in ids:
            k = ids.index(eos)
            assert m[: k + 1] == [1] * (k + 1) and m[k + 1 :] == [0] * (len(ids) - k - 1)
            assert all(t == tok.pad_token_id for t in ids[k + 1 :])
            assert bool(out.has_eos[i])
        else:
            assert all(m) and not bool(out.has_eos[i])
    assert torch.all(out.logprobs[out.response_mask == 0] == 0)


def test_same_seed_same_output(tiny):
    model, tok = tiny
    kw = dict(
        max_new_tokens=10,
        temperature=1.0,
        top_p=0.9,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    a = generate(model, PROMPTS, generator=torch.Generator().manual_seed(7), **kw)
    b = generate(model, PROMPTS, generator=torch.Generator().manual_seed(7), **kw)
    c = generate(model, PROMPTS, generator=torch.Generator().manual_seed(8), **kw)
    assert torch.equal(a.sequences, b.sequences)
    assert not torch.equal(a.sequences, c.sequences)


def test_left_pad_and_top_p():
    ids, mask = left_pad([[5, 6, 7], [9]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 9]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    # probs 0.5, 0.3, 0.2 -> top_p 0.6 keeps the first two (the second crosses the threshold)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    kept = torch.isfinite(top_p_filter(logits, 0.6))
    assert kept.tolist() == [[True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_pad_equal_to_eos_refused(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="pad_token_id must differ"):
        generate(model, PROMPTS, max_new_tokens=2, eos_token_id=2, pad_token_id=2)


def test_finished_rows_leave_the_batch_without_changing_the_others(tiny):
    """Rows that end early are dropped from the batch and KV cache; every row's tokens and log-probs
    must equal those of generating that prompt alone (greedy, so the result is deterministic)."""
    model, tok = tiny
    pad = tok.pad_token_id
    kw = dict(max_new_tokens=10, temperature=0.0, pad_token_id=pad)
    alone0 = generate(model, [PROMPTS[0]], eos_token_id=tok.eos_token_id, **kw)
    # Make prompt 0's third greedy token the EOS: row 0 stops after 3 tokens, the others go on.
    eos = int(alone0.response_ids[0, 2])
    batch = generate(model, PROMPTS, eos_token_id=eos, **kw)
    lengths = batch.response_mask.sum(-1).tolist()
    assert lengths[0] == 3 and max(lengths) > 3, lengths
    for i, prompt in enumerate(PROMPTS):
        single = generate(model, [prompt], eos_token_id=eos, **kw)
        n = int(single.response_mask.sum())
        assert n == lengths[i]
        assert batch.response_ids[i, :n].tolist() == single.response_ids[0, :n].tolist()
        assert (batch.response_ids[i, n:] == pad).all()
        torch.testing.assert_close(batch.logprobs[i, :n], single.logprobs[0, :n], rtol=1e-5, atol=1e-5)
    attn = full_attention_mask(batch)
    policy = ActorCritic(model, with_value=False)
    with torch.no_grad():
        recomputed = policy(batch.sequences, attn, batch.prompt_length, 1.0).logps
    torch.testing.assert_close(recomputed * batch.response_mask, batch.logprobs, rtol=1e-5, atol=1e-5)


def test_num_samples_shares_each_prefill_and_equals_expanded_prompts(tiny):
    """k samples per prompt from one prefill each: same tokens and log-probs as k copies of the prompt."""
    model, tok = tiny
    kw = dict(max_new_tokens=8, temperature=1.0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    k = 3
    expanded = [p for p in PROMPTS for _ in range(k)]
    a = generate(model, expanded, generator=torch.Generator().manual_seed(5), **kw)
    b = generate(model, PROMPTS, generator=torch.Generator().manual_seed(5), num_samples=k, **kw)
    assert b.response_ids.shape[0] == len(expanded)
    assert torch.equal(a.sequences, b.sequences)
    assert torch.equal(a.response_mask, b.response_mask)
    torch.testing.assert_close(b.logprobs, a.logprobs, rtol=1e-5, atol=1e-5)
    assert len({tuple(r.tolist()) for r in b.response_ids[:k]}) > 1  # the k samples differ


def test_shared_prompt_prefix_computed_once_changes_nothing(tiny, monkeypatch):
    """Prompts sharing a long prefix (a chat template's system prompt): the prefix is prefilled once
    (cache layout [prefix][padding][rest]); tokens equal the unshared path (greedy) and the log-probs
    equal the training forward on the returned left-padded sequences."""
    import rlhfops.models.generate as g

    model, tok = tiny
    prefix = [1] + list(range(10, 30))
    prompts = [prefix + [60, 61, 62, 63], prefix + [70], prefix + [80, 81]]
    assert g._shared_prefix_length(prompts) == len(prefix)
    kw = dict(max_new_tokens=8, temperature=0.0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    shared = generate(model, prompts, **kw)
    monkeypatch.setattr(g, "SHARED_PREFIX_MIN_SAVING", 10**9)
    assert g._shared_prefix_length(prompts) == 0
    plain = generate(model, prompts, **kw)
    assert torch.equal(shared.sequences, plain.sequences)
    torch.testing.assert_close(shared.logprobs, plain.logprobs, rtol=1e-5, atol=1e-5)
    attn = full_attention_mask(shared)
    with torch.no_grad():
        recomputed = ActorCritic(model, with_value=False)(shared.sequences, attn, shared.prompt_length).logps
    torch.testing.assert_close(recomputed * shared.response_mask, shared.logprobs, rtol=1e-5, atol=1e-5)


def test_inverse_cdf_sampling_draws_the_distribution():
    from rlhfops.models.generate import _sample

    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = torch.log(probs).expand(20000, 4).clone()
    u = torch.rand((20000, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nxt, logp, ent = _sample(logits, 1.0, 1.0, u)
    freq = torch.bincount(nxt, minlength=4).float() / len(nxt)
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    torch.testing.assert_close(logp, torch.log(probs)[nxt])
    torch.testing.assert_close(ent, torch.full_like(ent, -sum(p * p.log() for p in probs[:3]).item()))
    nxt, _, _ = _sample(logits, 1.0, 0.6, u)  # top-p keeps tokens 0 and 1
    assert set(nxt.tolist()) == {0, 1}


def _k_samples(tiny, k: int = 3):
    model, tok = tiny
    kw = dict(
        max_new_tokens=10, temperature=1.0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    return generate(model, PROMPTS, generator=torch.Generator().manual_seed(7), num_samples=k, **kw)


def _count_tokens(module: torch.nn.Module) -> tuple[list[int], object]:
    """Token positions fed to ``module``'s forward, per call (to tell the shared path from the plain one)."""
    calls: list[int] = []
    hook = module.register_forward_pre_hook(
        lambda _m, _a, kw: calls.append(kw["input_ids"].numel()), with_kwargs=True
    )
    return calls, hook


def test_reference_computes_each_shared_prompt_once_with_the_same_logprobs(tiny, monkeypatch):
    """Reference log-probs of k samples per prompt: each prompt computed once (fewer tokens through the
    model, counted), the same log-probs as one forward over every row (1e-5)."""
    from rlhfops.train import forward

    model, _tok = tiny
    k = 3
    out = _k_samples(tiny, k)
    attn = full_attention_mask(out)
    ref = Reference(model, uses_lora=False)
    seen = []
    real = forward.hidden_after_prompts

    def spy(trunk, ids, mask, prompt_width, group=1):
        calls = []
        hook = trunk.register_forward_pre_hook(
            lambda _m, _a, kw: calls.append(kw["input_ids"].numel()), with_kwargs=True
        )
        try:
            return real(trunk, ids, mask, prompt_width, group)
        finally:
            hook.remove()
            seen.append(sum(calls))

    monkeypatch.setattr(forward, "hidden_after_prompts", spy)
    plain = ref.logps(out.sequences, attn, out.prompt_length, 1.0)
    shared = ref.logps(out.sequences, attn, out.prompt_length, 1.0, group=k)
    mask = out.response_mask.float()
    torch.testing.assert_close(shared * mask, plain * mask, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared * mask, out.logprobs, rtol=1e-5, atol=1e-5)
    P, W = out.prompt_length, out.sequences.shape[1]
    assert seen == [k * len(PROMPTS) * W, len(PROMPTS) * (P - 1) + k * len(PROMPTS) * (W - P + 1)]
    # rows that do not repeat in groups of k: one plain forward, same numbers
    shuffled = torch.randperm(out.sequences.shape[0], generator=torch.Generator().manual_seed(0))
    again = ref.logps(out.sequences[shuffled], attn[shuffled], P, 1.0, group=k)
    torch.testing.assert_close(again * mask[shuffled], plain[shuffled] * mask[shuffled], rtol=1e-5, atol=1e-5)
    assert seen[-1] == k * len(PROMPTS) * W


def test_lora_reference_shares_prompts_in_eval_mode_and_restores_training_mode(tmp_path):
    from rlhfops.models.loading import LoraSettings

    path = make_tiny_model_dir(tmp_path / "tiny", seed=3)
    lm = load_causal_lm(str(path), lora=LoraSettings(enabled=True, r=4), gradient_checkpointing=True)
    tok = load_tokenizer(str(path), padding_side="left")
    out = _k_samples((lm.eval(), tok), 2)
    attn = full_attention_mask(out)
    lm.train()  # as in a run: the policy is in training mode between updates
    ref = Reference(lm, uses_lora=True)
    calls, hook = _count_tokens(lm.get_decoder())
    shared = ref.logps(out.sequences, attn, out.prompt_length, 1.0, group=2)
    hook.remove()
    assert len(calls) == 2  # prefill of the prompts + the continuation: the shared path ran, in eval mode
    assert lm.training  # restored
    lm.eval()
    with lm.disable_adapter(), torch.no_grad():
        plain = ActorCritic(lm, with_value=False)(out.sequences, attn, out.prompt_length, 1.0).logps
    mask = out.response_mask.float()
    torch.testing.assert_close(shared * mask, plain * mask, rtol=1e-5, atol=1e-5)


def test_reward_model_scores_shared_prompts_once_with_the_same_scores(tmp_path):
    from rlhfops.models.heads import RewardModel
    from rlhfops.train.reward_sources import ModelReward, Responses

    path = make_tiny_model_dir(tmp_path / "tiny", seed=3)
    torch.manual_seed(0)
    RewardModel.from_causal_lm(str(path)).save_pretrained(tmp_path / "rm", load_tokenizer(str(path)))
    scorer = ModelReward(str(tmp_path / "rm"), pad_id=0)
    responses = [[90, 91, 92], [93], [94, 95], [96, 97, 98, 99], [], [100]]
    prompts = [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2 + [PROMPTS[2]] * 2  # k = 2 samples per prompt
    calls, hook = _count_tokens(scorer.model.trunk)
    together = scorer.score(Responses(prompts, responses, [""] * 6))
    hook.remove()
    assert len(calls) == 2 and calls[0] == 3 * (len(PROMPTS[0]) - 1)  # each of the 3 prompts once
    alone = torch.cat(
        [scorer.score(Responses([p], [r], [""])) for p, r in zip(prompts, responses, strict=True)]
    )
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    assert together.std() > 0


def test_generation_passes_the_kv_cache_under_the_models_own_name(tiny):
    """No FutureWarning about a deprecated cache argument on every forward call (the demo's terminal
    noise): the cache goes in under the name the model's forward declares."""
    import inspect
    import warnings

    from rlhfops.models.generate import cache_arg

    model, tok = tiny
    name = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
    assert list(cache_arg(model, object())) == [name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate(
            model,
            PROMPTS,
            max_new_tokens=4,
            temperature=1.0,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            generator=torch.Generator().manual_seed(0),
            num_samples=2,
        )
    assert not [
        w for w in caught if issubclass(w.category, FutureWarning) and "past_key_values" in str(w.message)
    ]


def test_a_row_samples_the_same_whatever_rows_share_its_batch(tiny):
    """Data parallel: two processes, each sampling its half of the batch with its rows' global indices
    and the same generator, sample exactly what one process holding the whole batch samples."""
    model, tok = tiny
    kw = dict(max_new_tokens=8, temperature=1.0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    k = 2
    whole = generate(model, PROMPTS, generator=torch.Generator().manual_seed(5), num_samples=k, **kw)
    n = len(PROMPTS) * k
    for rank in (0, 1):
        mine = PROMPTS[rank::2]
        ids = [(i * 2 + rank) * k + s for i in range(len(mine)) for s in range(k)]
        half = generate(model, mine, generator=torch.Generator().manual_seed(5), num_samples=k,
                        row_ids=ids, rows_total=n, **kw)  # fmt: skip
        steps = half.response_ids.shape[1]
        assert torch.equal(half.response_ids, whole.response_ids[ids, :steps])
        assert int(whole.response_mask[ids, steps:].sum()) == 0  # the whole batch only ran longer for others
        torch.testing.assert_close(half.logprobs, whole.logprobs[ids, :steps], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="row_ids"):
        generate(model, PROMPTS, generator=torch.Generator(), row_ids=[0], rows_total=4, **kw)


def test_scoring_computes_a_prefix_every_prompt_shares_once(tiny, monkeypatch):
    """Reference log-probs (and reward scores, the same function) of prompts that share a long prefix (a
    chat template's system prompt), left-padded to different lengths: the prefix runs once (tokens counted),
    the log-probs equal one forward over every row (1e-5). Below the saving threshold: one plain forward."""
    from rlhfops.train import forward

    model, tok = tiny
    prefix = [1] + list(range(10, 30))
    prompts = [prefix + [60, 61, 62, 63], prefix + [70], prefix + [80, 81]]
    kw = dict(max_new_tokens=8, temperature=1.0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    monkeypatch.setattr("rlhfops.models.generate.SHARED_PREFIX_MIN_SAVING", 10**9)  # a plain prefill
    out = generate(model, prompts, generator=torch.Generator().manual_seed(1), **kw)
    monkeypatch.undo()
    attn, mask = full_attention_mask(out), out.response_mask.float()
    P, W = out.prompt_length, out.sequences.shape[1]
    ref = Reference(model, uses_lora=False)
    calls, hook = _count_tokens(ref.copy.get_decoder())
    shared = ref.logps(out.sequences, attn, P, 1.0)
    assert calls == [len(prefix), len(prompts) * (W - len(prefix))]
    monkeypatch.setattr(forward, "_common_prefix_length", lambda ids, m: 0)
    plain = ref.logps(out.sequences, attn, P, 1.0)
    hook.remove()
    assert calls[2:] == [len(prompts) * W]
    torch.testing.assert_close(shared * mask, plain * mask, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared * mask, out.logprobs, rtol=1e-5, atol=1e-5)
    monkeypatch.undo()
    short = [p[len(prefix) - 5 :] for p in prompts]  # 5 shared tokens, 3 rows: saves 10 < 32 positions
    ids, m = left_pad(short, tok.pad_token_id)
    assert forward._common_prefix_length(ids, m) == 0
    assert forward._common_prefix_length(*left_pad(prompts, tok.pad_token_id)) == len(prefix)
