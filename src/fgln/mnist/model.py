"""The MNIST model of Section 8 and the measurements taken on its hidden square block.

Model (:class:`MnistFixedGates`): one fixed-gates linear network (Definition 4.1, rectangular
first and last layers, Remark 4.2) of widths ``784 -> 128 -> ... -> 128 -> 10``::

    logits = W_out  D_L W_L D_{L-1} ... D_1 W_1  D_in W_in  x

with the input adapter ``W_in`` [n, 784], the square block ``W_1..W_L`` [n, n] (L = 10,
n = 128 in the paper), the output adapter ``W_out`` [10, n], and unconditioned p-gates
``D_in, D_1, ..., D_L`` (i.i.d. Bernoulli(p) diagonals, p = 0.5) drawn once and kept fixed.
Weights are sigma-Ginibre with ``sigma = 1/sqrt(fan-in)`` (``1/sqrt(n)`` in the block).
The block and its gates are drawn first, by :func:`fgln.products.sampling.sample_network` with the
model's seed, so at initialisation the block is exactly the Section 5-7 network of that seed.

Measurements (paper, Section 8: "spectra and alignment statistics computed on the hidden
square block, excluding the input/output adapters"): :meth:`MnistFixedGates.hidden_block`
returns the block's weights and gates in the form of :func:`fgln.products.sampling.sample_network`
(``J = W_L D_{L-1} ... D_1 W_1``, the last gate ``D_L`` belongs to the output interface and
is ignored, as Definition 4.1 sets ``D_L = I``); :mod:`fgln.mnist.block_measurements` measures it
(Figures 4 and 5).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from ..base.threads import single_threaded, torch_threads
from ..base.validation import check_int, check_p, resolve_device
from ..products.sampling import make_generator, sample_network
from ..training.networks import FixedGatesNetwork
from ..training.train import train
from .block_measurements import block_statistics
from .data import Mnist, MnistDataset, load_mnist

Tensor = torch.Tensor

__all__ = [
    "MnistFixedGates",
    "MnistConfig",
    "train_mnist",
    "evaluate",
    "linear_baseline",
    "train_loader",
    "seeded_subset",
    "fit_classifier",
    "run_params",
]

IN_FEATURES = 28 * 28
CLASSES = 10


class MnistFixedGates(nn.Module):
    """Section 8 classifier: flatten, then one fixed-gates network ``784 -> n^(L+1) -> 10``.

    ``net`` is a :class:`fgln.training.networks.FixedGatesNetwork` of depth ``L + 2`` (weights
    ``W_in, W_1..W_L, W_out``; gates ``D_in, D_1..D_L``). Input images [batch, 1, 28, 28]
    (or [batch, 784]); output logits [batch, 10].
    """

    def __init__(self, net: FixedGatesNetwork):
        super().__init__()
        widths = net.widths
        if widths[0] != IN_FEATURES or widths[-1] != CLASSES or len(widths) < 4:
            raise ValueError(f"net must have widths [784, n, ..., n, 10] with a square block, "
                             f"got {widths}")
        if len(set(widths[1:-1])) != 1:
            raise ValueError(f"hidden widths must all be equal (square block), got {widths}")
        self.net = net

    @classmethod
    def random(cls, *, n: int = 128, depth: int = 10, p: float = 0.5, seed: int = 0,
               dtype: torch.dtype = torch.float32, device="cpu") -> MnistFixedGates:
        """The Section 8 initialisation (``depth`` = L square layers of width ``n``).

        One generator seeded by ``seed``: first the square block and its gates through
        ``sample_network(n, depth, p, 1/sqrt(n))`` (so ``hidden_block()`` at initialisation
        equals ``sample_network(n, depth, p, seed=seed)`` in float64), then ``W_in``
        [n, 784] (sigma 1/sqrt(784)), ``D_in`` and ``W_out`` [10, n] (sigma 1/sqrt(n)).
        Drawn in float64 and cast to ``dtype``.
        """
        n = check_int("n", n, 1)
        depth = check_int("depth", depth, 1)
        p = check_p(p)
        seed = check_int("seed", seed, 0)
        gen = make_generator(seed)
        w, d = sample_network(n, depth, p, 1.0 / math.sqrt(n), seed=gen)
        w_in = torch.randn(n, IN_FEATURES, generator=gen, dtype=torch.float64)
        w_in /= math.sqrt(IN_FEATURES)
        d_in = (torch.rand(n, generator=gen, dtype=torch.float64) < p).to(torch.float64)
        if p == 1.0:
            d_in = torch.ones(n, dtype=torch.float64)
        w_out = torch.randn(CLASSES, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
        weights = [w_in, *w[0].unbind(0), w_out]
        gates = [d_in, *d[0].unbind(0)]
        net = FixedGatesNetwork([x.to(dtype) for x in weights], [g.to(dtype) for g in gates])
        return cls(net).to(device)

    @property
    def depth(self) -> int:
        """L, the number of square layers."""
        return self.net.depth - 2

    @property
    def width(self) -> int:
        return self.net.widths[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1))

    def hidden_block(self, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
        """The square block as ``(weights [L, n, n], gates [L, n])`` (detached, on the CPU).

        ``weights[l-1] = W_l``; ``gates[l-1]`` is the diagonal of the gate that follows
        ``W_l`` (``D_l``; ``gates[L-1]`` is the output interface gate, which the Section 7
        products ignore). The layout of :func:`fgln.products.sampling.sample_network` without batch.
        """
        ws = [w.detach().to("cpu", dtype) for w in self.net.weights[1:-1]]
        gs = [g.detach().to("cpu", dtype) for g in self.net.gates[1:]]
        return torch.stack(ws), torch.stack(gs)


# --------------------------------------------------------------------------------------
# baseline
# --------------------------------------------------------------------------------------


@single_threaded
def linear_baseline(train: MnistDataset, test: MnistDataset, *, ridge: float = 1e-3) -> float:
    """Test accuracy of the least-squares linear map ``x -> M x`` (no bias, the function class of
    the network) fitted to one-hot labels on the un-augmented training images.

    ``M = Y^T X (X^T X + ridge * tr(X^T X)/784 I)^{-1}`` in float64.
    """
    xs = [ds.images.reshape(len(ds), -1).to(torch.float64) / 255.0 for ds in (train, test)]
    if train.normalize:
        from .data import MNIST_MEAN, MNIST_STD

        xs = [(x - MNIST_MEAN) / MNIST_STD for x in xs]
    X, Xt = xs
    Y = F.one_hot(train.labels, CLASSES).to(torch.float64)
    G = X.T @ X
    G += ridge * torch.trace(G) / G.shape[0] * torch.eye(G.shape[0], dtype=G.dtype)
    M = torch.linalg.solve(G, X.T @ Y)  # [784, 10]
    return float(((Xt @ M).argmax(1) == test.labels).double().mean())


# --------------------------------------------------------------------------------------
# training (Section 8)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MnistConfig:
    """Everything a Section 8 training run depends on (besides the seed and the data).

    Defaults: the paper's network (n = 128, L = 10, p = 0.5) trained by mini-batch SGD with
    heavy-ball momentum 0.9, learning rate 0.01, batches of 128, 10 epochs, AutoAugment on.
    ``train_size`` / ``test_size``: use only the first images (None: all).
    """

    n: int = 128
    depth: int = 10
    p: float = 0.5
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    augment: bool = True
    train_size: int | None = None
    test_size: int | None = None
    k_spectrum: int = 30
    k_align: tuple[int, ...] = field(default=(10, 64))

    def params(self) -> dict:
        """JSON-serialisable form (for :func:`fgln.book.cache.cached`)."""
        d = asdict(self)
        d["k_align"] = list(self.k_align)
        return d


def seeded_subset(ds: MnistDataset, seed: int, count: int | None, augment: bool) -> MnistDataset:
    """The first ``count`` images of ``ds`` (all when None), augmentation draws seeded by
    ``seed`` (augmentation kept only when ``augment``)."""
    n = len(ds) if count is None else check_int("size", count, 1, len(ds))
    return MnistDataset(ds.images[:n], ds.labels[:n], augment=ds.augment if augment else None,
                        normalize=ds.normalize, seed=seed)


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, batch: int = 4096) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``model`` on images ``x`` and labels ``y``."""
    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, x.shape[0], batch):
        out = model(x[i: i + batch])
        correct += int((out.argmax(1) == y[i: i + batch]).sum())
        loss += float(F.cross_entropy(out.float(), y[i: i + batch], reduction="sum"))
    model.train(was_training)
    return correct / x.shape[0], loss / x.shape[0]


def train_loader(ds: MnistDataset, batch_size: int, workers: int, seed: int,
                 device: torch.device) -> DataLoader:
    """The training ``DataLoader``: shuffled from a generator seeded by ``seed``, ``workers``
    loader processes, pinned memory on CUDA."""
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                      generator=torch.Generator().manual_seed(seed),
                      pin_memory=device.type == "cuda")


def fit_classifier(model: nn.Module, train_ds: MnistDataset, x_test: Tensor, y_test: Tensor,
                   config: MnistConfig, *, seed: int, workers: int, device: torch.device,
                   checkpoint: str | os.PathLike | None, progress: bool | None,
                   desc: str) -> tuple:
    """The Section 8 training loop, shared by every MNIST model of the book: ``model`` moved to
    ``device`` and trained by :func:`fgln.training.train.train` (cross-entropy, SGD with
    momentum, float32, the augmented ``DataLoader`` of :func:`train_loader`, a checkpoint every
    epoch, one intra-op thread), recording the test accuracy and loss (``x_test`` [m, ...],
    ``y_test`` [m]) after 0..epochs epochs. Returns ``(TrainResult, seconds, steps per
    epoch)``."""
    model.to(device)
    loader = train_loader(train_ds, config.batch_size, workers, seed, device)
    x_dev, y_dev = x_test.to(device), y_test.to(device)

    def on_record(ctx) -> dict:
        acc, loss = evaluate(ctx.model, x_dev, y_dev)
        return {"test_acc": acc, "test_loss": loss}

    t0 = time.perf_counter()
    # small matrices: one intra-op thread (a second one only spins against the loader worker)
    with torch_threads(1):
        res = train(model, loader, F.cross_entropy, lr=config.lr, epochs=config.epochs,
                    optimizer="sgd", momentum=config.momentum, record=[0], record_epochs=True,
                    recorders=[], callback=on_record, checkpoint=checkpoint,
                    checkpoint_every=len(loader), device=device, dtype=torch.float32,
                    progress=progress, desc=desc)
    return res, time.perf_counter() - t0, len(loader)


def train_mnist(config: MnistConfig = MnistConfig(), *, seed: int = 0, data: Mnist | None = None,
                device="auto", workers: int = 1, checkpoint: str | os.PathLike | None = None,
                progress: bool | None = None) -> dict[str, np.ndarray]:
    """Train the Section 8 model once and measure its hidden block before and after.

    ``data``: from :func:`fgln.mnist.data.load_mnist` (loaded here when None); the augmentation
    draws use ``seed``, as do the initialisation and the batch order. Training goes through
    :func:`fgln.training.train.train` (cross-entropy, SGD with momentum, a ``DataLoader`` with
    ``workers`` processes for the augmentation, a checkpoint at the end of every epoch
    when ``checkpoint`` is a path, resumed from when it exists). ``device``: ``"auto"`` (CUDA
    when available), ``"cpu"`` or ``"cuda"``; the model trains in float32, spectra are
    taken in float64.

    Returns numpy arrays and scalars (for :func:`fgln.book.cache.cached`): ``test_acc``,
    ``test_loss`` [epochs + 1] (after 0..epochs epochs), ``train_loss`` [epochs] (mean batch
    loss of each epoch), ``losses`` [steps], the :func:`block_statistics` of the hidden block
    at initialisation (suffix ``_init``) and after training (``logsv_B``, ``logsv_J``,
    ``rho_k{k}``), ``seconds`` (training loop, this process), ``seconds_per_epoch``,
    ``epochs_run`` (epochs trained in this process; fewer after a resume), ``n_train``,
    ``n_test``, ``device`` and ``source`` (strings as 0-d unicode arrays).
    """
    seed = check_int("seed", seed, 0)
    workers = check_int("workers", workers, 0)
    dev = resolve_device(device)
    if data is None:
        data = load_mnist(seed=seed)
    train_ds = seeded_subset(data.train, seed, config.train_size, config.augment)
    test_ds = seeded_subset(data.test, seed, config.test_size, False)
    model = MnistFixedGates.random(n=config.n, depth=config.depth, p=config.p, seed=seed,
                                   dtype=torch.float32)
    stats0 = block_statistics(*model.hidden_block(), k_spectrum=config.k_spectrum,
                              k_align=config.k_align)
    x_test, y_test = test_ds.batch(range(len(test_ds)))
    res, seconds, per_epoch = fit_classifier(
        model, train_ds, x_test, y_test, config, seed=seed, workers=workers, device=dev,
        checkpoint=checkpoint, progress=progress, desc=f"MNIST seed {seed}")
    stats = block_statistics(*model.hidden_block(), k_spectrum=config.k_spectrum,
                             k_align=config.k_align)
    steps_done = res.steps - (res.resumed_from or 0)
    epochs_run = steps_done / per_epoch
    losses = np.asarray(res.losses, dtype=float)
    full = losses.size // per_epoch
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    out: dict[str, np.ndarray | float | int] = {
        "test_acc": np.asarray(res.history["test_acc"], dtype=float),
        "test_loss": np.asarray(res.history["test_loss"], dtype=float),
        "record_step": np.asarray(res.history["step"], dtype=np.int64),
        "train_loss": losses[: full * per_epoch].reshape(full, per_epoch).mean(1),
        "losses": losses,
        "seconds": float(seconds),
        "seconds_per_epoch": float(seconds / epochs_run) if epochs_run > 0 else float("nan"),
        "epochs_run": float(epochs_run),
        "n_train": len(train_ds), "n_test": len(test_ds),
        "device": np.array(dev_name),
        "source": np.array(data.source),
    }
    out.update({f"{k}_init": v for k, v in stats0.items()})
    out.update(stats)
    return out


def run_params(config: MnistConfig, seed: int, data: Mnist) -> dict:
    """What one run's result depends on, JSON-serialisable (a cache key's parameters): the
    configuration, the seed, the data source and its sizes. The device is not part of it (a
    GPU result stands for a CPU one)."""
    return {**config.params(), "seed": int(seed), "source": data.source,
            "n_train_total": len(data.train), "n_test_total": len(data.test)}
