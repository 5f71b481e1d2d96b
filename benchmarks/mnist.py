"""Throughput of the Section 8 training loop (MNIST, AutoAugment) against the pipeline a user
would write with torchvision, and the data pipeline's share.

    .venv/bin/python benchmarks/mnist.py                 # 8,000 images, 7 rounds, CPU
    .venv/bin/python benchmarks/mnist.py --quick         # 512 images (seconds)
    .venv/bin/python benchmarks/mnist.py --device cuda --workers 0,4

All loops train the chapter's model (``fgln.mnist.model.MnistFixedGates``: 784 -> 128, the square
block L = 10, n = 128, p = 0.5, -> 10; float32, seed 0) with cross-entropy and SGD (momentum
0.9, lr 0.01) on shuffled batches of ``--batch`` images, ``W`` loader processes, one intra-op
thread on the CPU. One round = one epoch over the images:

* ``ours``: ``fgln.training.train.train`` over the chapter's ``DataLoader``
  (``fgln.mnist.run.train_loader``: AutoAugment batched per ``DataLoader`` batch by
  ``fgln.mnist.augment.BatchedAutoAugment``);
* ``torchvision``: what a user would write: a ``Dataset`` giving each image as
  ``torchvision.datasets.MNIST`` does (a PIL image) through ``Compose([AutoAugment(CIFAR10),
  ToTensor(), Normalize(mean, std)])``, image by image, in a ``DataLoader``, and the standard
  loop (``for x, y in loader: zero_grad, forward, loss, backward, step``);
* ``plain loop over our loader``: that standard loop over ours' ``DataLoader``: the difference
  from ``ours`` is the training loop alone (``fgln.train``'s bookkeeping);
* ``no augmentation``: the standard loop over the same images without augmentation;
* ``compute only``: the standard loop over batches already in memory (no loader): the model's
  own cost, the floor of every loop.

All loops run in interleaved rounds (``benchmarks/timing.py``: a discarded warm-up round, then
``--rounds`` >= 7 rounds round-robin). Per loop: images per second (from the median round), the
minimum, median and interquartile range of the round times, and the share of the wall time
spent waiting for the next batch (time inside the loader's ``next``; with ``W >= 1`` processes
only the part the training step does not hide). Comparisons: ours against torchvision and
against the plain loop over our loader, per ``W``, with the ratio of the medians and the
verdict. Every round of a loop over our dataset augments its epoch anew (a seed no round
used before: the dataset keeps the augmented images of the epoch it served last). Also the
augmentation alone, per image, in interleaved rounds: the batched transform (in calls of
``AUGMENT_CHUNK`` images, as the dataset augments an epoch) against torchvision's
``AutoAugment`` image by image on the same uint8 tensors (same images) and on PIL images.
Results: ``benchmarks/results/mnist-<device>[-quick].json`` (atomic write), with the date,
machine, torch version and the load average at start and end.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from fgln.base.atomic import atomic_write
from fgln.base.threads import torch_threads
from fgln.base.validation import resolve_device
from fgln.mnist.data import (
    AUGMENT_CHUNK,
    MNIST_MEAN,
    MNIST_STD,
    BundledMnistWarning,
    MnistDataset,
    load_mnist,
)
from fgln.mnist.model import MnistFixedGates
from fgln.mnist.run import train_loader
from fgln.training.train import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/timing.py)

LR, MOMENTUM = 0.01, 0.9


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


class TorchvisionMnist(Dataset):
    """The usual torchvision pipeline: item ``i`` is the PIL image of ``images[i]`` (as
    ``torchvision.datasets.MNIST`` gives it) through ``transform``, and its label."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i].numpy(), mode="L")
        return self.transform(img), int(self.labels[i])


def torchvision_dataset(ds: MnistDataset, augment: bool = True) -> TorchvisionMnist:
    """``ds``'s images and labels behind the torchvision pipeline (AutoAugment CIFAR10 policy,
    ``ToTensor``, ``Normalize`` with the dataset's constants)."""
    steps = [transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10)] if augment else []
    steps += [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    return TorchvisionMnist(ds.images, ds.labels, transforms.Compose(steps))


def _model(dev: torch.device, seed: int = 0):
    model = MnistFixedGates.random(seed=seed, dtype=torch.float32).to(dev)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


class Rounds:
    """Per-round records (``seconds`` from the loop's own clock, ``wait``) of one loop."""

    def __init__(self):
        self.records: list[dict] = []

    def add(self, seconds: float, wait: float) -> None:
        self.records.append({"seconds": seconds, "wait": wait})


_FRESH = itertools.count(1)


def _fresh_epoch(ds) -> None:
    """Give our dataset a seed no round used before, so that the round augments its epoch as
    every epoch of a training does (``MnistDataset`` keeps the augmented images of the epoch
    it served last: a round, or another loop, must not read them back)."""
    if isinstance(ds, MnistDataset):
        ds.seed = next(_FRESH)


def ours_round(ds, batch_size, workers, dev, rec: Rounds):
    """One epoch of ``fgln.training.train.train`` per call (same model and optimiser across
    rounds)."""
    model = MnistFixedGates.random(seed=0, dtype=torch.float32)
    state = {"round": 0}

    def run():
        _fresh_epoch(ds)
        loader = TimedLoader(train_loader(ds, batch_size, workers, state["round"], dev))
        state["round"] += 1
        t = time.perf_counter()
        train(model, loader, F.cross_entropy, lr=LR, epochs=1, optimizer="sgd",
              momentum=MOMENTUM, recorders=[], device=dev, dtype=torch.float32,
              progress=False)
        rec.add(time.perf_counter() - t, loader.wait)
    return run


def standard_round(ds, batch_size, workers, dev, rec: Rounds):
    """One epoch of the standard loop over a ``DataLoader`` of ``ds`` per call."""
    model, opt = _model(dev)
    state = {"round": 0}

    def run():
        if hasattr(ds, "set_epoch"):  # the draws of fgln.train's one epoch, as in ours
            ds.set_epoch(0)
        _fresh_epoch(ds)
        loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                            generator=torch.Generator().manual_seed(state["round"]),
                            pin_memory=dev.type == "cuda")
        state["round"] += 1
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
        rec.add(time.perf_counter() - t0, wait)
    return run


def compute_round(ds, batch_size, dev, rec: Rounds):
    """One pass of the standard loop over batches already in memory per call."""
    xs, ys = ds.batch(range(len(ds)))
    xs, ys = xs.to(dev), ys.to(dev)
    model, opt = _model(dev)

    def run():
        t0 = time.perf_counter()
        for i in range(0, len(ds), batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xs[i: i + batch_size]), ys[i: i + batch_size]).backward()
            opt.step()
        rec.add(time.perf_counter() - t0, 0.0)
    return run


def time_augmentation(ds, count: int, batch_size: int, rounds: int) -> dict:
    """Seconds per image of the augmentation alone, interleaved rounds over the same
    ``count`` images: the batched transform (in calls of ``AUGMENT_CHUNK`` images, as the
    dataset augments an epoch, its random draws from ``(seed, epoch, index)`` included),
    torchvision's ``AutoAugment`` image by image on the uint8 tensors, and on PIL images."""
    aug = ds.augment
    idx = list(range(count))
    imgs = ds.images[idx][:, None]
    pils = [Image.fromarray(ds.images[i].numpy(), mode="L") for i in idx]
    ref = transforms.AutoAugment(aug.policy)

    def batched():  # the random draws included, as the loader pays them (torchvision's too)
        for i in range(0, count, AUGMENT_CHUNK):
            aug(imgs[i: i + AUGMENT_CHUNK], aug.draws(ds.seed, 0, idx[i: i + AUGMENT_CHUNK]))

    def tensor():
        for i in idx:
            ref(imgs[i])

    def pil():
        for im in pils:
            ref(im)

    times = timing.interleave({"batched": batched, "torchvision, tensor": tensor,
                               "torchvision, PIL": pil}, rounds, per=count)
    out = {"images": count, "per_image_s": {k: timing.summary(v) for k, v in times.items()}}
    out["comparisons"] = {f"torchvision, {k} / batched": timing.compare(
        times[f"torchvision, {k}"], times["batched"]) for k in ("tensor", "PIL")}
    out["speedup"] = out["comparisons"]["torchvision, tensor / batched"]["ratio_median"]
    return out


def _summary(rec: Rounds, images: int, rounds: int) -> dict:
    runs = rec.records[-rounds:]  # the warm-up round is discarded
    secs = [r["seconds"] for r in runs]
    s = timing.summary(secs)
    share = timing.summary([r["wait"] / r["seconds"] for r in runs])
    return {"images_per_s": images / s["median"], "seconds": s, "data_share": share["median"],
            "data_share_rounds": share, "images": images}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--workers", default="0,1", help="loader processes, comma-separated")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=timing.MIN_ROUNDS,
                    help=f"timed epochs per loop, interleaved (>= {timing.MIN_ROUNDS})")
    ap.add_argument("--train-size", type=int, default=None, help="images (default: all)")
    ap.add_argument("--aug-images", type=int, default=1024,
                    help="images of the augmentation-alone timing")
    ap.add_argument("--quick", action="store_true", help="512 images, 256 for augmentation")
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if args.rounds < timing.MIN_ROUNDS:
        ap.error(f"--rounds must be at least {timing.MIN_ROUNDS}")
    if args.quick:
        args.train_size, args.aug_images = args.train_size or 512, 256
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
    n = len(ds)
    with torch_threads(1):
        meta = timing.machine(dev)
        meta.update(source=mn.source, images=n, batch=args.batch, rounds=args.rounds,
                    workers=workers, quick=args.quick)
        recs: dict[str, Rounds] = {}
        loops = {}
        for w in workers:
            for name, make in ((f"ours, workers={w}", ours_round),
                               (f"torchvision, workers={w}", None),
                               (f"plain loop over our loader, workers={w}", standard_round)):
                recs[name] = Rounds()
                if make is None:
                    loops[name] = standard_round(torchvision_dataset(ds), args.batch, w, dev,
                                                 recs[name])
                else:
                    loops[name] = make(ds, args.batch, w, dev, recs[name])
        recs["no augmentation, workers=0"] = Rounds()
        loops["no augmentation, workers=0"] = standard_round(
            plain_ds, args.batch, 0, dev, recs["no augmentation, workers=0"])
        recs["compute only"] = Rounds()
        loops["compute only"] = compute_round(ds, args.batch, dev, recs["compute only"])
        timing.interleave(loops, args.rounds, device=dev)
        res: dict = {"meta": meta, "loops": {k: _summary(r, n, args.rounds)
                                             for k, r in recs.items()}}
        secs = {k: [r["seconds"] for r in v.records[-args.rounds:]] for k, v in recs.items()}
        res["comparisons"] = {}
        for w in workers:
            for other in (f"torchvision, workers={w}", f"plain loop over our loader, workers={w}"):
                res["comparisons"][f"ours, workers={w} / {other}"] = timing.compare(
                    secs[f"ours, workers={w}"], secs[other])
        res["augmentation"] = time_augmentation(ds, min(n, args.aug_images), args.batch,
                                                args.rounds)
    timing.finish(meta)

    floor = res["loops"]["compute only"]["seconds"]["median"]
    print(f"{meta['date']}, {meta['cpu_model']}, {meta['cpu_count']} cores, device "
          f"{meta['device']}, torch {meta['torch_version']}, load average "
          f"{meta['loadavg_start']} -> {meta['loadavg_end']}")
    print(f"{mn.source} MNIST, {n} images, batch {args.batch}, {args.rounds} interleaved rounds "
          f"(one epoch each); images/s from the median round")
    print(f"{'loop':44s} {'images/s':>9s} {'median s':>9s} {'min s':>7s} {'IQR s':>7s} "
          f"{'data share':>11s} {'/ compute':>10s}")
    for name, r in res["loops"].items():
        s = r["seconds"]
        r["over_compute"] = s["median"] / floor
        print(f"{name:44s} {r['images_per_s']:9.0f} {s['median']:9.3f} {s['min']:7.3f} "
              f"{s['iqr']:7.3f} {100 * r['data_share']:10.1f}% {r['over_compute']:10.2f}")
    print("time ratio of medians [sign-test interval of the round ratios]:")
    for name, c in res["comparisons"].items():
        other = name.split(" / ")[1].split(",")[0]
        print(f"  {name:70s} {timing.describe(c, 'ours', other)}")
    a = res["augmentation"]
    pi = a["per_image_s"]
    print(f"AutoAugment alone, per image (median of {args.rounds} rounds, {a['images']} images): "
          f"batched {1e3 * pi['batched']['median']:.3f} ms, torchvision image by image "
          f"{1e3 * pi['torchvision, tensor']['median']:.3f} ms on tensors, "
          f"{1e3 * pi['torchvision, PIL']['median']:.3f} ms on PIL images")
    for name, c in a["comparisons"].items():
        print(f"  {name:34s} {timing.describe(c, 'torchvision', 'batched')}")
    if not args.no_save:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"mnist-{dev.type}{'-quick' if args.quick else ''}.json"
        text = json.dumps(res, indent=2) + "\n"
        atomic_write(path, lambda fh: fh.write(text), "w")
        res["json_path"] = str(path)
    return res


if __name__ == "__main__":
    main()
