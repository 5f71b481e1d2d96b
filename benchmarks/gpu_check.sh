#!/usr/bin/env bash
# CUDA check of the spectra code, run from the repository root with a Python whose torch is a
# CUDA build:
#
#     OUT=/path/for/results bash benchmarks/gpu_check.sh
#
# (1) compares the CUDA path (CholeskyQR2 with a Householder fallback) with the CPU path
#     (Householder QR) on small gated and ungated problems;
# (2) times the exponent workload and the exact final spectrum at batch 1024, n = 128, L = 100
#     (adaptive QR interval and reorth_every = 1) against the matmul floor;
# (3) runs benchmarks/spectra.py on CUDA at n = 128, L = 100, batch 32, p = 0.5.
set -euo pipefail
OUT=${OUT:-benchmarks/results}
PY=${PY:-python3}
mkdir -p "$OUT"
PYTHONPATH=src:benchmarks "$PY" - <<'PYEOF'
import time

import torch
from baselines import floor_products
from fgln.sampling import sample_layers
from fgln.spectra import log_singular_values, log_spectra_by_depth, lyapunov_estimates

assert torch.cuda.is_available(), "no CUDA device"
print(torch.__version__, torch.cuda.get_device_name(0))
# 1. correctness: CUDA (cholqr) vs CPU (householder), gated and ungated
for p in (1.0, 0.5):
    lay = sample_layers(32, 60, p, batch=8, seed=1)
    ref = log_spectra_by_depth(lay, method="householder")
    got = log_spectra_by_depth(lay.cuda(), method="auto").cpu()
    fin = torch.isfinite(ref)
    assert torch.equal(fin, torch.isfinite(got)), "zero pattern differs on CUDA"
    print(f"p={p}: max |cuda - cpu| = {(ref[fin] - got[fin]).abs().max().item():.2e}")
# 2. timings at batch 1024 against the floor (second call timed, after a warm-up call)
lay = sample_layers(128, 100, 0.5, batch=1024, seed=0, device="cuda")
runs = [("floor", lambda: floor_products(lay))]
for m in (None, 1):
    runs += [(f"exponents m={m or 'auto'}", lambda m=m: lyapunov_estimates(lay, reorth_every=m)),
             (f"final spectrum m={m or 'auto'}",
              lambda m=m: log_singular_values(lay, reorth_every=m))]
for name, fn in runs:
    fn()
    torch.cuda.synchronize()
    t = time.time()
    fn()
    torch.cuda.synchronize()
    print(f"{name:24s} {time.time() - t:8.3f} s")
PYEOF
PYTHONPATH=src "$PY" benchmarks/spectra.py --device cuda --n 128 --L 100 --batch 32 --p 0.5 \
  --repeats 3 --repeats-every-depth 1 --out-dir "$OUT"
