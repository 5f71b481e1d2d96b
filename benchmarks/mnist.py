"""Throughput of the Section 8 training loop (MNIST, AutoAugment) and the data pipeline's share.

    .venv/bin/python benchmarks/mnist.py                 # 8,000 images, 2 epochs per loop, CPU
    .venv/bin/python benchmarks/mnist.py --quick         # 512 images, 1 epoch (seconds)
    .venv/bin/python benchmarks/mnist.py --device cuda --workers 0,4

All loops train the chapter's model (``fgln.mnist.model.MnistFixedGates``: 784 -> 128, the square
block L = 10, n = 128, p = 0.5, -> 10; float32) with cross-entropy and SGD (momentum 0.9,
lr 0.01) on batches of ``--batch`` images, in one intra-op thread on the CPU:

* ``ours``: ``fgln.training.train.train`` over the chapter's ``DataLoader`` (AutoAugment on the
  training
  images, batched per ``DataLoader`` batch by ``fgln.mnist.augment.BatchedAutoAugment``, ``W``
  loader
  processes), without recording or checkpoints;
* ``plain``: the same model, loader and optimiser in a bare PyTorch loop (``for x, y in
  loader: zero_grad, forward, loss, backward, step``);
* ``plain, no augmentation``: the bare loop over the same images without augmentation;
* ``compute only``: the bare loop over batches already in memory (no loader): the model's
  own cost, the floor of every loop.

For each loop: images per second (best epoch of ``--epochs``), and the share of the wall time
spent waiting for the next batch (time inside the loader's ``next``; with ``W >= 1`` processes
only the part the training step does not hide). Also the cost per image of the augmentation
itself, batched against torchvision's ``AutoAugment`` image by image. Results:
``benchmarks/results/mnist-<device>.json`` (atomic write).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from fgln.base.atomic import atomic_write
from fgln.base.threads import torch_threads
from fgln.base.validation import resolve_device
from fgln.mnist.data import BundledMnistWarning, load_mnist
from fgln.mnist.model import MnistFixedGates, train_loader
from fgln.training.train import train

LR, MOMENTUM = 0.01, 0.9


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


class TimedLoader:
    """A ``DataLoader`` seen through the training loop, timing every ``next``."""

    def __init__(self, loader: DataLoader):
        self.loader = loader
        self.dataset, self.sampler = loader.dataset, loader.sampler
        self.batch_sampler, self.generator = loader.batch_sampler, loader.generator
        self.wait = 0.0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        it = iter(self.loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.wait += time.perf_counter() - t
            yield batch


def _model(dev: torch.device, seed: int = 0):
    model = MnistFixedGates.random(seed=seed, dtype=torch.float32).to(dev)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def time_ours(ds, batch, workers, epochs, dev) -> list[dict]:
    """``fgln.training.train.train``, one call per epoch (same model, optimiser state via
    resume)."""
    out = []
    model = MnistFixedGates.random(seed=0, dtype=torch.float32)
    for e in range(epochs):
        loader = TimedLoader(train_loader(ds, batch, workers, e, dev))
        _sync(dev)
        t = time.perf_counter()
        train(model, loader, F.cross_entropy, lr=LR, epochs=1, optimizer="sgd",
              momentum=MOMENTUM, recorders=[], device=dev, dtype=torch.float32,
              progress=False)
        _sync(dev)
        wall = time.perf_counter() - t
        out.append({"seconds": wall, "wait": loader.wait, "images": len(ds)})
    return out


def time_plain(ds, batch, workers, epochs, dev) -> list[dict]:
    out = []
    model, opt = _model(dev)
    for e in range(epochs):
        ds.set_epoch(e)
        loader = train_loader(ds, batch, workers, e, dev)
        _sync(dev)
        t0 = time.perf_counter()
        wait = 0.0
        it = iter(loader)
        while True:
            t = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                wait += time.perf_counter() - t
                break
            wait += time.perf_counter() - t
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        _sync(dev)
        out.append({"seconds": time.perf_counter() - t0, "wait": wait, "images": len(ds)})
    return out


def time_compute(ds, batch, epochs, dev) -> list[dict]:
    xs, ys = ds.batch(range(len(ds)))
    xs, ys = xs.to(dev), ys.to(dev)
    model, opt = _model(dev)
    out = []
    for _ in range(epochs):
        _sync(dev)
        t0 = time.perf_counter()
        for i in range(0, len(ds), batch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xs[i: i + batch]), ys[i: i + batch]).backward()
            opt.step()
        _sync(dev)
        out.append({"seconds": time.perf_counter() - t0, "wait": 0.0, "images": len(ds)})
    return out


def time_augmentation(ds, count: int, batch: int) -> dict:
    """Seconds per image: the batched transform (per ``batch``) and torchvision's image by
    image, on the same images and draws."""
    from torchvision.transforms import AutoAugment

    aug = ds.augment
    idx = list(range(count))
    imgs = ds.images[idx][:, None]
    t = time.perf_counter()
    for i in range(0, count, batch):
        aug(imgs[i: i + batch], aug.draws(ds.seed, 0, idx[i: i + batch]))
    batched = (time.perf_counter() - t) / count
    ref = AutoAugment(aug.policy)
    t = time.perf_counter()
    for i in idx:
        ref(imgs[i])
    single = (time.perf_counter() - t) / count
    return {"batched_s_per_image": batched, "torchvision_s_per_image": single,
            "speedup": single / batched}


def _summary(runs: list[dict]) -> dict:
    best = min(runs, key=lambda r: r["seconds"])
    return {"images_per_s": best["images"] / best["seconds"], "seconds": best["seconds"],
            "data_share": best["wait"] / best["seconds"], "epochs": runs}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--workers", default="0,1", help="loader processes, comma-separated")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per loop (best one kept)")
    ap.add_argument("--train-size", type=int, default=None, help="images (default: all)")
    ap.add_argument("--quick", action="store_true", help="512 images, 1 epoch")
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_size, args.epochs = args.train_size or 512, 1
    dev = resolve_device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available (torch "
                         f"{torch.__version__}, built with CUDA {torch.version.cuda})")
    workers = [int(w) for w in args.workers.split(",")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundledMnistWarning)
        mn = load_mnist()
    ds = mn.train if args.train_size is None else mn.train.subset(args.train_size)
    plain_ds = mn.train.subset(len(ds))
    plain_ds.augment = None
    load0 = os.getloadavg()
    res: dict = {"meta": {
        "device": dev.type if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "torch_version": torch.__version__, "python": platform.python_version(),
        "cpu_model": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "source": mn.source, "images": len(ds), "batch": args.batch, "epochs": args.epochs,
        "loadavg_start": load0}, "loops": {}}
    with torch_threads(1):
        for w in workers:
            res["loops"][f"ours, workers={w}"] = _summary(
                time_ours(ds, args.batch, w, args.epochs, dev))
            res["loops"][f"plain, workers={w}"] = _summary(
                time_plain(ds, args.batch, w, args.epochs, dev))
        res["loops"]["plain, no augmentation, workers=0"] = _summary(
            time_plain(plain_ds, args.batch, 0, args.epochs, dev))
        res["loops"]["compute only"] = _summary(time_compute(ds, args.batch, args.epochs, dev))
        res["augmentation"] = time_augmentation(ds, min(len(ds), 1024), args.batch)
    res["meta"]["loadavg_end"] = os.getloadavg()

    floor = res["loops"]["compute only"]["images_per_s"]
    print(f"device {res['meta']['device']}, {mn.source} MNIST, {len(ds)} images, batch "
          f"{args.batch}, torch {torch.__version__}, load {load0[0]:.1f}")
    print(f"{'loop':36s} {'images/s':>10s} {'s/epoch':>8s} {'data share':>11s} {'/ compute':>10s}")
    for name, r in res["loops"].items():
        r["over_compute"] = floor / r["images_per_s"]
        print(f"{name:36s} {r['images_per_s']:10.0f} {r['seconds']:8.2f} "
              f"{100 * r['data_share']:10.1f}% {r['over_compute']:10.2f}")
    a = res["augmentation"]
    print(f"AutoAugment per image: batched {1e3 * a['batched_s_per_image']:.3f} ms, "
          f"torchvision image by image {1e3 * a['torchvision_s_per_image']:.3f} ms "
          f"({a['speedup']:.1f}x)")
    if not args.no_save:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"mnist-{dev.type}.json"
        text = json.dumps(res, indent=2) + "\n"
        atomic_write(path, lambda fh: fh.write(text), "w")
        res["json_path"] = str(path)
    return res


if __name__ == "__main__":
    main()
