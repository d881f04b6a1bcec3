#!/usr/bin/env bash
# GPU smoke run (issue 23): SFT, RM, DPO and a few PPO iterations on a random 1B-shape model in bf16 with
# sdpa attention, beside TRL 1.16 for SFT, RM and DPO; prints tokens/s and peak GPU memory per stage.
# At most 8 minutes on one H100 (enforced: the run is stopped at 480 s). The first thing to run on a GPU.
#
#   bench/gpu_smoke.sh                 # on a GPU machine
#   bench/gpu_smoke.sh --tiny          # the same path on CPU with a tiny model, in seconds
#   bench/gpu_smoke.sh --json out.json # also write the figures to a file (see docs/scaling.md)
#
# PYTHON picks the interpreter (default: .venv/bin/python of the checkout, else python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then py="$root/.venv/bin/python"; else py="python3"; fi
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec timeout --signal=TERM --kill-after=10 "${GPU_SMOKE_TIMEOUT:-480}" "$py" "$here/gpu_smoke.py" "$@"
