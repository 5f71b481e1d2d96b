"""Training-step cost of FixedGatesNetwork against the plain PyTorch model, and the cost of
recording spectra at the chapters' recording frequency.

    .venv/bin/python benchmarks/training.py            # full sizes (about a minute on 2 cores)
    .venv/bin/python benchmarks/training.py --quick    # seconds (smoke test)
    .venv/bin/python benchmarks/training.py --device cuda

Workloads (one SGD step = zero_grad, forward, loss, backward, optimiser step):

* ``chapters``: n = 64, L = 10, p = 0.5, float64, the 1000-sample regression of Figure 1
  compressed to 64 rows (what Chapters 1 and 7 run), and the same on the 1000 raw rows;
* ``mnist``: n = 128, L = 10, p = 0.5, float32, mini-batches of 128 rows (the hidden block of
  the Section 8 model).

The plain model is what a user would write instead: bias-free ``nn.Linear`` layers, each
followed by multiplication with a fixed 0/1 mask (a buffer), with the same weights.
Recording: :func:`fgln.training.train.train` on the Figure 1 task with the chapters' recorders and
frequencies (Chapter 1: ``SpectralRecorder`` every 25 steps; Chapter 7: ``DynamicsRecorder``
every 20 steps); the JSON reports recording time over training time.
Results: ``benchmarks/results/training-<device>.json`` (atomic write).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from fgln.base.atomic import atomic_write
from fgln.base.validation import resolve_device
from fgln.training.networks import FixedGatesNetwork
from fgln.training.recorders import DynamicsRecorder, SpectralRecorder
from fgln.training.synthetic_runs import compress_regression, synthetic_task
from fgln.training.train import half_mse, train


class MaskedLinearStack(nn.Module):
    """The plain model: ``h <- mask_l * (W_l h)`` for l < L, then ``W_L h``; no bias."""

    def __init__(self, net: FixedGatesNetwork):
        super().__init__()
        w = net.widths
        dtype, device = net.weights[0].dtype, net.weights[0].device
        self.linears = nn.ModuleList(nn.Linear(w[l - 1], w[l], bias=False, dtype=dtype,
                                               device=device) for l in range(1, len(w)))
        with torch.no_grad():
            for lin, weight in zip(self.linears, net.weights):
                lin.weight.copy_(weight)
        for i, g in enumerate(net.gates):
            self.register_buffer(f"mask{i}", g.clone())

    def forward(self, x):
        h = x
        for i, lin in enumerate(self.linears):
            h = lin(h)
            if i < len(self.linears) - 1:
                h = h * getattr(self, f"mask{i}")
        return h


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(model, x, y, steps, repeats, device) -> float:
    """Seconds per SGD step: minimum over ``repeats`` of the mean over ``steps`` steps."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    best = float("inf")
    for r in range(repeats + 1):  # the first round warms up
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = half_mse(model(x), y)
            loss.backward()
            opt.step()
        _sync(device)
        if r:
            best = min(best, (time.perf_counter() - t0) / steps)
    return best


def step_workloads(quick: bool, device, repeats: int) -> list[dict]:
    rows = []
    n, L = (16, 4) if quick else (64, 10)
    X, Y, _ = synthetic_task(n, min(10, n), 1000, seed=0, device=device)
    Xc, Yc, _, _ = compress_regression(X, Y)
    cases = [("chapters, compressed rows", torch.float64, n, Xc, Yc),
             ("chapters, 1000 raw rows", torch.float64, n, X, Y)]
    nm = 16 if quick else 128
    gen = torch.Generator(device=device).manual_seed(1)
    xm = torch.randn(128, nm, generator=gen, device=device)
    ym = torch.randn(128, nm, generator=gen, device=device)
    cases.append(("mnist hidden block, batch 128", torch.float32, nm, xm, ym))
    steps = 20 if quick else 200
    for name, dtype, width, x, y in cases:
        net = FixedGatesNetwork.random([width] * (L + 1), 0.5, seed=0, dtype=dtype,
                                       device=device)
        plain = MaskedLinearStack(net).to(device)
        x, y = x.to(dtype), y.to(dtype)
        with torch.no_grad():
            assert torch.allclose(net(x), plain(x), rtol=1e-4, atol=1e-5)
        t_ours = time_steps(net, x, y, steps, repeats, device)
        t_plain = time_steps(plain, x, y, steps, repeats, device)
        rows.append(dict(workload=name, n=width, L=L, rows=int(x.shape[0]), dtype=str(dtype),
                         ours_ms=1e3 * t_ours, plain_ms=1e3 * t_plain, ratio=t_ours / t_plain))
    return rows


def recording_workloads(quick: bool, device) -> list[dict]:
    n, L, rank = (16, 4, 2) if quick else (64, 10, 10)
    steps = 100 if quick else 500
    X, Y, _ = synthetic_task(n, rank, 1000, seed=0, device=device)
    Xc, Yc, w, _ = compress_regression(X, Y)
    rows = []
    for name, rec, every in (("Chapter 1: SpectralRecorder(k=15), every 25 steps",
                              SpectralRecorder(min(15, n), partial_k=0), 25),
                             ("Chapter 7: DynamicsRecorder(k=15), every 20 steps",
                              DynamicsRecorder(min(15, n), r=rank), 20),
                             ("default SpectralRecorder (with partial products), every 10",
                              SpectralRecorder(min(15, n)), 10)):
        net = FixedGatesNetwork.random([n] * (L + 1), 0.5, seed=0, device=device)
        res = train(net, (Xc, Yc), lambda o, t: w * half_mse(o, t), lr=0.02, steps=steps,
                    record=every, recorders=[rec], device=device, progress=False)
        net2 = FixedGatesNetwork.random([n] * (L + 1), 0.5, seed=0, device=device)
        bare = train(net2, (Xc, Yc), lambda o, t: w * half_mse(o, t), lr=0.02, steps=steps,
                     recorders=[], device=device, progress=False)
        train_s = res.seconds - res.record_seconds
        rows.append(dict(workload=name, steps=steps, records=int(res.history["step"].size),
                         total_s=res.seconds, record_s=res.record_seconds,
                         train_s=train_s, bare_s=bare.seconds,
                         record_over_train=res.record_seconds / train_s,
                         ms_per_record=1e3 * res.record_seconds / res.history["step"].size))
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, seconds")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available in this torch build/machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    out = {
        "device": str(device), "quick": args.quick, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "load_start": load0,
        "steps": step_workloads(args.quick, device, args.repeats),
        "recording": recording_workloads(args.quick, device),
        "load_end": os.getloadavg(),
    }
    for r in out["steps"]:
        print(f"{r['workload']:32s} ours {r['ours_ms']:7.3f} ms  plain {r['plain_ms']:7.3f} ms"
              f"  ratio {r['ratio']:.2f}  (target <= 1.2)")
    for r in out["recording"]:
        print(f"{r['workload']:58s} {r['records']:4d} records, {r['ms_per_record']:6.2f} ms "
              f"each: recording / training = {r['record_over_train']:.2f} (target <= 0.5)")
    if not args.no_save:
        d = Path(args.out_dir)
        d.mkdir(parents=True, exist_ok=True)
        tag = "-quick" if args.quick else ""
        text = json.dumps(out, indent=2) + "\n"
        atomic_write(d / f"training-{device.type}{tag}.json", lambda fh: fh.write(text), "w")
    return out


if __name__ == "__main__":
    main()
