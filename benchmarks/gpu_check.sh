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
# (4) runs the CUDA tests of the suite (those with "cuda" in their name; skipped without GPU);
# (5) trains the Section 8 MNIST model at paper scale on CUDA (one seed; the full MNIST if it
#     is in the data folder, else the bundled digits) and prints device, seconds per epoch and
#     test accuracy, then runs benchmarks/mnist.py on CUDA (images/s, data pipeline's share).
set -euo pipefail
OUT=${OUT:-benchmarks/results}
PY=${PY:-python3}
mkdir -p "$OUT"
PYTHONPATH=src:benchmarks "$PY" - <<'PYEOF'
import time

import torch
from baselines import floor_products
from fgln.base.laws import LayerLaw
from fgln.products.sampling import sample_layers
from fgln.products.spectra import log_singular_values, log_spectra_by_depth, lyapunov_estimates

assert torch.cuda.is_available(), "no CUDA device"
print(torch.__version__, torch.cuda.get_device_name(0))
# 1. correctness: CUDA (cholqr) vs CPU (householder), gated and ungated
for p in (1.0, 0.5):
    lay = sample_layers(LayerLaw(32, p).product(60), 8, seed=1)
    ref = log_spectra_by_depth(lay, method="householder")
    got = log_spectra_by_depth(lay.cuda(), method="auto").cpu()
    fin = torch.isfinite(ref)
    assert torch.equal(fin, torch.isfinite(got)), "zero pattern differs on CUDA"
    print(f"p={p}: max |cuda - cpu| = {(ref[fin] - got[fin]).abs().max().item():.2e}")
# 2. timings at batch 1024 against the floor (second call timed, after a warm-up call)
lay = sample_layers(LayerLaw(128, 0.5).product(100), 1024, seed=0, device="cuda")
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
  --repeats 7 --repeats-every-depth 7 --out-dir "$OUT"
PYTHONPATH=src "$PY" -m pytest -q -rs -p no:cacheprovider -k cuda tests/test_mnist.py \
  tests/test_data.py tests/test_train.py tests/test_networks.py
PYTHONPATH=src "$PY" - <<'PYEOF'
import os
import warnings

from fgln.mnist.data import BundledMnistWarning, load_mnist
from fgln.mnist import MnistConfig, train_mnist

with warnings.catch_warnings():
    warnings.simplefilter("ignore", BundledMnistWarning)
    mn = load_mnist()
workers = min(4, max(1, (os.cpu_count() or 2) - 1))
r = train_mnist(MnistConfig(), seed=0, data=mn, device="cuda", workers=workers, progress=False)
print(f"MNIST paper scale: device {r['device']}, {r['source']} data ({r['n_train']} train / "
      f"{r['n_test']} test), {workers} loader processes, {r['seconds_per_epoch']:.2f} s per "
      f"epoch, test accuracy {r['test_acc'][-1]:.4f} after {len(r['test_acc']) - 1} epochs")
PYEOF
PYTHONPATH=src "$PY" benchmarks/mnist.py --device cuda --workers 0,1,4 --out-dir "$OUT"
