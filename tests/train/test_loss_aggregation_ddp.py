"""Real 2-process data parallel (gloo, CPU): token-mean loss gives the one-big-batch gradient.

Each rank holds half of a batch of 8 ragged sequences, all-reduces its token count, and uses
``token_mean_loss(..., num_tokens_global) * world_size`` (DDP averages gradients over ranks). The
averaged gradient must equal the gradient of the single-process token mean over all 8 sequences.
(OpenRLHF's test_loss_aggregation, in miniature.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from rlhfops.train.losses import gather_token_logprobs, token_mean_loss

WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from rlhfops.train.losses import gather_token_logprobs, token_mean_loss

    rank, store, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
    torch.manual_seed(0)
    data = torch.load(sys.argv[4])
    model = torch.nn.Linear(4, 7, dtype=torch.float64)
    model.load_state_dict(data["state"])
    ddp = DDP(model)
    rows = slice(4 * rank, 4 * rank + 4)
    x, labels, mask = data["x"][rows], data["labels"][rows], data["mask"][rows]
    n_global = mask.sum().to(torch.float64)
    dist.all_reduce(n_global)
    logps = gather_token_logprobs(ddp(x), labels.masked_fill(~mask, -100))
    loss = token_mean_loss(-logps, mask, float(n_global)) * dist.get_world_size()
    loss.backward()
    if rank == 0:
        torch.save({k: p.grad for k, p in model.named_parameters()}, out)
    dist.barrier()  # neither rank tears gloo down while the other still talks to it (it aborted, rarely)
    dist.destroy_process_group()
    """
)


def _data():
    gen = torch.Generator().manual_seed(11)
    b, t = 8, 5
    x = torch.randn(b, t, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 7, (b, t), generator=gen)
    # ragged and unequal across ranks (5 vs 17 tokens), so a per-rank mean would be wrong
    lengths = torch.tensor([1, 1, 2, 1, 5, 3, 4, 5])
    mask = torch.arange(t)[None, :] < lengths[:, None]
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 7, dtype=torch.float64)
    return model, {"x": x, "labels": labels, "mask": mask, "state": model.state_dict()}


def test_two_process_ddp_matches_single_batch(tmp_path):
    model, data = _data()
    data_path, out_path, store = tmp_path / "data.pt", tmp_path / "grads.pt", tmp_path / "store"
    torch.save(data, data_path)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(r), str(store), str(out_path), str(data_path)])
        for r in range(2)
    ]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0]
    ddp_grads = torch.load(out_path)

    logps = gather_token_logprobs(model(data["x"]), data["labels"].masked_fill(~data["mask"], -100))
    token_mean_loss(-logps, data["mask"]).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-5, atol=1e-12)

    # a per-rank token mean (the common mistake) averaged over ranks gives a different gradient
    model.zero_grad()
    for rows in (slice(0, 4), slice(4, 8)):
        lp = gather_token_logprobs(
            model(data["x"][rows]), data["labels"][rows].masked_fill(~data["mask"][rows], -100)
        )
        (token_mean_loss(-lp, data["mask"][rows]) / 2).backward()
    assert not torch.allclose(model.weight.grad, ddp_grads["weight"], rtol=1e-3)
