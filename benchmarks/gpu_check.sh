#!/usr/bin/env bash
# One short, prepared GPU check for a session that is lent a CUDA device (see the device
# tool's README: 15 minutes of device time in all). Run from the repository root, with a
# Python whose torch is a CUDA build:
#
#     OUT=/path/for/results bash benchmarks/gpu_check.sh
#
# It (1) checks the CUDA paths against the CPU on small problems, (2) times the exponent
# workload at the issue's size (batch 1024, n = 128, L = 100) against the matmul floor, and
# (3) runs benchmarks/spectra.py on CUDA at batch 64, L = 100. Written 2026-11-28 in a session
# without a GPU: not yet run on one.
set -euo pipefail
OUT=${OUT:-benchmarks/results}
PY=${PY:-python3}
mkdir -p "$OUT"
PYTHONPATH=src "$PY" - <<'PYEOF'
import time, torch
from fgln.sampling import sample_layers
from fgln.spectra import log_spectra_by_depth, lyapunov_estimates
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
# 2. exponent workload at the issue's size
lay = sample_layers(128, 100, 1.0, batch=1024, seed=0, device="cuda")
def floor():
    P = torch.eye(128, dtype=lay.dtype, device="cuda").expand(1024, 128, 128)
    for l in range(100):
        P = lay[:, l] @ P
        P = P / torch.linalg.matrix_norm(P)[:, None, None]
    return P
for name, fn in [("floor", floor)] + [
        (f"lyapunov m={m}", lambda m=m: lyapunov_estimates(lay, reorth_every=m)) for m in (1, 2, 5)]:
    fn(); torch.cuda.synchronize(); t = time.time(); fn(); torch.cuda.synchronize()
    print(f"{name:16s} {time.time() - t:8.3f} s")
PYEOF
PYTHONPATH=src "$PY" benchmarks/spectra.py --device cuda --n 128 --L 100 --batch 64 \
  --repeats 2 --repeats-every-depth 1 --reorth 1,2,5 --no-reference --out-dir "$OUT"
