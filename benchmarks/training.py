"""Training-step cost of FixedGatesNetwork against the plain PyTorch model, and the cost of
recording spectra at the chapters' recording frequency.

    .venv/bin/python benchmarks/training.py --threads 1    # full sizes (a few minutes, 2 cores)
    .venv/bin/python benchmarks/training.py --quick        # seconds (smoke test)
    .venv/bin/python benchmarks/training.py --device cuda

Workloads (one SGD step = zero_grad, forward, loss, backward, optimiser step; one round =
``--steps`` steps, time per step = round time / steps):

* ``chapters``: n = 64, L = 10, p = 0.5, float64, the 1000-sample regression of Figure 1
  compressed to 64 rows (what Chapters 1 and 7 run), and the same on the 1000 raw rows;
* ``mnist``: n = 128, L = 10, p = 0.5, float32, mini-batches of 128 rows (the hidden block of
  the Section 8 model).

The plain model is what a user would write instead: bias-free ``nn.Linear`` layers, each
followed by multiplication with a fixed 0/1 mask (a buffer), with the same weights. At 64 and
128 rows ``FixedGatesNetwork.forward`` goes layer by layer, the same computation as the plain
model. At 1000 rows it goes through ``J`` (fewer multiplications): that comparison is reported
as *different computations*, beside the like-for-like one where ours is made to go layer by
layer too (:class:`LayerByLayer`).

The workloads of one comparison run in interleaved rounds (``benchmarks/timing.py``: a
discarded warm-up round, then ``--rounds`` >= 7 rounds round-robin); per workload the minimum,
median and interquartile range of the rounds, per comparison the ratio of the medians and the
verdict (`timing.verdict`: same cost within 10 %, faster, slower or inconclusive, from the
sign-test interval of the paired round ratios).

Closed form: the same compressed-rows regression, its steps taken by
:func:`fgln.training.regression_descent.regression_descent` (the gradient of Lemma A.1, no
autograd graph: the chapters' synthetic runs), against the same plain model.

Recording: :func:`fgln.training.regression_descent.regression_descent` on the Figure 1 task as
the chapters run it
(:class:`~fgln.training.synthetic_runs.Figure1Run`: at paper sizes a record every
``record_dt / lr`` = 25 steps; Chapter 1's ``SpectralRecorder``, Chapter 7's
``DynamicsRecorder``), the runs with each recorder and a run without any interleaved over the
rounds. Two measures per recorder: the recorder's own clock over the rest of the run, and what
a user pays, the wall time of the run over that of the run without recorder (ratio of medians
with its sign-test interval).
Results: ``benchmarks/results/training-<device>[-quick].json`` (atomic write), with the date,
machine, torch version and the load average at start and end.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from fgln.base.atomic import atomic_write
from fgln.base.validation import resolve_device
from fgln.training.networks import FixedGatesNetwork
from fgln.training.recorders import DynamicsRecorder, SpectralRecorder, record_steps
from fgln.training.regression_descent import regression_descent
from fgln.training.synthetic_runs import Figure1Run, compress_regression, synthetic_task
from fgln.training.train import half_mse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/timing.py)


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


class LayerByLayer(FixedGatesNetwork):
    """``FixedGatesNetwork`` whose forward always goes layer by layer (never through ``J``):
    the plain model's computation, for the like-for-like comparison at many rows."""

    def _sequential_cheaper(self, rows: int) -> bool:
        return True


def order(net: FixedGatesNetwork, rows: int) -> str:
    """How ``net``'s forward evaluates ``rows`` rows: ``"layer by layer"`` or ``"through J"``."""
    return "layer by layer" if net._sequential_cheaper(rows) else "through J"


def step_round(model: nn.Module, x, y, steps: int):
    """One round: ``steps`` SGD steps of ``model`` on ``(x, y)`` (its own optimiser)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def run():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = half_mse(model(x), y)
            loss.backward()
            opt.step()
    return run


def descent_round(net: FixedGatesNetwork, x, y, steps: int):
    """One round: ``steps`` gradient steps of ``net`` on ``(x, y)`` taken by
    :func:`fgln.training.regression_descent.regression_descent` (the gradient in closed form,
    what the chapters' synthetic runs now use), from the same start every round."""
    W = torch.stack([w.detach() for w in net.weights])
    D = torch.stack(net.gates)

    def run():
        regression_descent(W, D, x, y, lr=1e-3, steps=steps, progress=False)
    return run


def _ms(times: list[float]) -> dict:
    return timing.summary([1e3 * t for t in times])


def step_workloads(quick: bool, device, rounds: int, steps: int | None = None) -> list[dict]:
    """One row per comparison (ours against plain): the per-step times of both in ms
    (min, median, IQR, rounds), the ratio of the medians and the verdict."""
    n, L = (16, 4) if quick else (64, 10)
    steps = steps or (20 if quick else 200)
    X, Y, _ = synthetic_task(n, min(10, n), 1000, seed=0, device=device)
    Xc, Yc, _, _ = compress_regression(X, Y)
    nm = 16 if quick else 128
    gen = torch.Generator(device=device).manual_seed(1)
    xm = torch.randn(128, nm, generator=gen, device=device)
    ym = torch.randn(128, nm, generator=gen, device=device)
    cases = [("chapters, compressed rows", torch.float64, n, Xc, Yc),
             ("chapters, 1000 raw rows", torch.float64, n, X, Y),
             ("mnist hidden block, batch 128", torch.float32, nm, xm, ym)]
    rows = []
    for name, dtype, width, x, y in cases:
        net = FixedGatesNetwork.random([width] * (L + 1), 0.5, seed=0, dtype=dtype,
                                       device=device)
        x, y = x.to(dtype), y.to(dtype)
        models = {"ours": net, "plain": MaskedLinearStack(net).to(device)}
        auto = order(net, x.shape[0])
        if auto != "layer by layer":
            models["ours, layer by layer"] = LayerByLayer(net.weights, net.gates).to(device)
        with torch.no_grad():
            for m in models.values():
                assert torch.allclose(m(x), models["plain"](x), rtol=1e-4, atol=1e-5)
        rounds_of = {k: step_round(m, x, y, steps) for k, m in models.items()}
        closed = name == "chapters, compressed rows"
        if closed:  # the chapters' own loop: no autograd graph, the gradient of Lemma A.1
            rounds_of["ours, closed form"] = descent_round(net, x, y, steps)
        times = timing.interleave(rounds_of, rounds, device=device, per=steps)
        pairs = [("ours", auto)] if auto == "layer by layer" else [
            ("ours, layer by layer", "layer by layer"), ("ours", auto)]
        if closed:
            pairs.append(("ours, closed form", "closed form"))
        for key, how in pairs:
            same = how == "layer by layer"
            cmp = timing.compare(times[key], times["plain"])
            ours, plain = _ms(times[key]), _ms(times["plain"])
            rows.append(dict(
                workload=(name if len(pairs) == 1 or key == "ours" and how == "layer by layer"
                          else f"{name}, ours {how}"),
                n=width, L=L, rows=int(x.shape[0]), dtype=str(dtype), steps=steps,
                ours_order=how, computation="same" if same else "different",
                ours=ours, plain=plain, ours_ms=ours["median"], plain_ms=plain["median"],
                ratio=cmp["ratio_median"], comparison=cmp))
    return rows


def recording_workloads(quick: bool, device, rounds: int) -> list[dict]:
    """Per recorder, as the chapters run it (:class:`Figure1Run` at the scale: sizes, step,
    a record every ``record_dt / lr`` steps): ms per record, the recorder's own clock over
    the rest of the run, and the wall time of the run against a run without recorder
    (interleaved rounds; ratio of medians, sign-test interval and verdict)."""
    run_cfg = Figure1Run.at("quick" if quick else "paper")
    n, L, rank, k = run_cfg.n, run_cfg.L, run_cfg.rank, run_cfg.k
    every = round(run_cfg.record_dt / run_cfg.lr)
    steps = 4 * every if quick else 20 * every
    X, Y, _ = synthetic_task(n, rank, run_cfg.samples, seed=0, device=device)
    Xc, Yc, w, _ = compress_regression(X, Y)
    recorders = {f"Chapter 1: SpectralRecorder(k={k}), every {every} steps":
                 (lambda: SpectralRecorder(k, partial_k=0), every),
                 f"Chapter 7: DynamicsRecorder(k={k}), every {every} steps":
                 (lambda: DynamicsRecorder(k, subspace=rank), every),
                 f"default SpectralRecorder (with partial products), every {every} steps":
                 (lambda: SpectralRecorder(k), every)}
    results: dict[str, list] = {name: [] for name in recorders}

    net = FixedGatesNetwork.random([n] * (L + 1), run_cfg.p, seed=0, device=device)
    W, D = torch.stack([v.detach() for v in net.weights]), torch.stack(net.gates)

    def run(name):
        def go():
            make, freq = recorders.get(name, (None, None))
            rec = make() if make else None

            def on_record(st):
                rec(FixedGatesNetwork(st.weights, D), st.grad_J)

            res = regression_descent(W, D, Xc, Yc, weight=w, lr=run_cfg.lr, steps=steps,
                                     record=record_steps(freq, steps) if make else (),
                                     on_record=on_record if make else None, progress=False)
            if make:
                results[name].append(res)
        return go

    times = timing.interleave({name: run(name) for name in [*recorders, "no recorder"]},
                              rounds, device=device)
    rows = []
    for name, runs in results.items():
        runs = runs[-rounds:]  # the warm-up round's run is discarded
        records = len(record_steps(recorders[name][1], steps))
        share = [r.record_seconds / (r.seconds - r.record_seconds) for r in runs]
        per_record = [1e3 * r.record_seconds / records for r in runs]
        s = timing.summary(share)
        rows.append(dict(workload=name, steps=steps, every=every, records=records,
                         total_s=timing.summary(times[name]),
                         bare_s=timing.summary(times["no recorder"]),
                         ms_per_record=timing.summary(per_record)["median"],
                         ms_per_record_rounds=timing.summary(per_record),
                         record_over_train=s["median"], record_over_train_rounds=s,
                         wall=timing.compare(times[name], times["no recorder"])))
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, seconds")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--rounds", type=int, default=timing.MIN_ROUNDS,
                    help=f"timed rounds per workload, interleaved (>= {timing.MIN_ROUNDS})")
    ap.add_argument("--steps", type=int, default=None,
                    help="SGD steps per round (default 200, --quick 20)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if args.rounds < timing.MIN_ROUNDS:
        ap.error(f"--rounds must be at least {timing.MIN_ROUNDS}")
    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available in this torch build/machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = timing.machine(device)
    meta.update(quick=args.quick, rounds=args.rounds)
    out = {"meta": meta,
           "steps": step_workloads(args.quick, device, args.rounds, args.steps),
           "recording": recording_workloads(args.quick, device, args.rounds)}
    timing.finish(meta)
    print(f"{meta['date']}, {meta['cpu_model']}, {meta['cpu_count']} cores, torch "
          f"{meta['torch_version']}, {meta['torch_threads']} threads, load average "
          f"{meta['loadavg_start']} -> {meta['loadavg_end']}; {args.rounds} interleaved rounds")
    print("ms per step: median (min, IQR); ratio of medians [sign-test interval of round ratios]")
    for r in out["steps"]:
        o, p = r["ours"], r["plain"]
        tag = "" if r["computation"] == "same" else "  (different computations)"
        print(f"{r['workload']:50s} ours {o['median']:7.3f} ({o['min']:.3f}, {o['iqr']:.3f})"
              f"  plain {p['median']:7.3f} ({p['min']:.3f}, {p['iqr']:.3f})"
              f"  ratio {timing.describe(r['comparison'])}{tag}")
    print("recording: the recorder's own clock over the rest of the run; wall time of the run "
          "over the run without recorder [sign-test interval]")
    for r in out["recording"]:
        s, c = r["record_over_train_rounds"], r["wall"]
        lo, hi = c["round_ratio_interval"]
        print(f"{r['workload']:66s} {r['records']:4d} records, {r['ms_per_record']:6.2f} ms "
              f"each: own clock {s['median']:.2f} (min {s['min']:.2f}, max {s['max']:.2f}); "
              f"wall {c['ratio_median']:.2f} [{lo:.2f}, {hi:.2f}]")
    if not args.no_save:
        d = Path(args.out_dir)
        d.mkdir(parents=True, exist_ok=True)
        tag = "-quick" if args.quick else ""
        text = json.dumps(out, indent=2) + "\n"
        atomic_write(d / f"training-{device.type}{tag}.json", lambda fh: fh.write(text), "w")
    return out


if __name__ == "__main__":
    main()
