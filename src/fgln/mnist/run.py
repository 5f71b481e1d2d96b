"""The Section 8 training run: what every MNIST run starts from (:func:`prepare_run`), the
training loop shared by the book's MNIST models (:func:`fit_classifier`), the run of the
fixed-gates model with its block measured before and after (:func:`train_mnist`) and what its
result depends on (:func:`run_params`)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from ..base.threads import torch_threads
from ..base.validation import check_int, resolve_device
from ..training.train import train
from .block_measurements import block_statistics
from .data import Mnist, MnistDataset, load_mnist
from .model import MnistConfig, MnistFixedGates

Tensor = torch.Tensor
_PAPER = MnistConfig()  # the paper's configuration (frozen)

__all__ = ["RunSetup", "prepare_run", "evaluate", "train_loader", "fit_classifier",
           "train_mnist", "run_params"]


@dataclass(frozen=True)
class RunSetup:
    """What every MNIST training run of the book starts from (:func:`prepare_run`): its checked
    ``seed``, ``workers`` and ``device``, the ``data``, the ``train`` and ``test`` splits of its
    configuration and the test images and labels as tensors (``x_test`` [N, 1, 28, 28],
    ``y_test`` [N]).

    Parameters
    ----------
    seed, workers, device, data, train, test, x_test, y_test
        The attributes below, in this order.

    Attributes
    ----------
    seed : int
        Start value of the run's random streams.
    workers : int
        Loader processes for the augmentation.
    device : torch.device
        Where the run trains.
    data : Mnist
        The two splits as loaded.
    train : MnistDataset
        The training images of the configuration (augmented when asked).
    test : MnistDataset
        The test images of the configuration.
    x_test : Tensor
        Test images [N, 1, 28, 28] float32, normalised as the items are.
    y_test : Tensor
        Test labels [N] int64.
    """

    seed: int
    workers: int
    device: torch.device
    data: Mnist
    train: MnistDataset
    test: MnistDataset
    x_test: Tensor
    y_test: Tensor


def prepare_run(config: MnistConfig, seed: int, data: Mnist | None, device, workers: int
                ) -> RunSetup:
    """Check a run's arguments, load the data when ``data`` is None and cut the splits of
    ``config`` (:meth:`.MnistConfig.splits`).

    Parameters
    ----------
    config : MnistConfig
        The run's configuration (``TypeError`` for anything else).
    seed : int
        Start value of the run's random streams (>= 0).
    data : Mnist or None
        The two splits; None loads them (:func:`fgln.mnist.data.load_mnist`).
    device : str or torch.device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    workers : int
        Loader processes for the augmentation (>= 0).

    Returns
    -------
    setup : RunSetup
        The checked arguments, the data and the run's splits.

    Raises
    ------
    TypeError
        If ``config`` is not an MnistConfig or ``seed``, ``workers`` not an integer.
    ValueError
        If ``seed`` or ``workers`` is negative or ``device`` unknown.
    """
    if not isinstance(config, MnistConfig):
        raise TypeError(f"config must be an MnistConfig, got {type(config).__name__}")
    seed = check_int("seed", seed, 0)
    workers = check_int("workers", workers, 0)
    dev = resolve_device(device)
    if data is None:
        data = load_mnist(seed=seed)
    train_ds, test_ds = config.splits(data, seed=seed)
    x_test, y_test = test_ds.batch(range(len(test_ds)))
    return RunSetup(seed, workers, dev, data, train_ds, test_ds, x_test, y_test)


def _correct(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 4096) -> np.ndarray:
    """Per image, 1 where ``model`` classifies it correctly, else 0 (int8 [m]; eval mode)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = [(model(x[i: i + batch_size]).argmax(1) == y[i: i + batch_size]).cpu()
               for i in range(0, x.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.int8)


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 4096,
             ) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``model`` on images ``x`` and labels ``y``.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning logits [m, classes]; evaluated in eval mode, its mode restored.
    x : Tensor
        Images [m, ...].
    y : Tensor
        Labels [m] int64.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    accuracy : float
        Fraction of images classified correctly.
    loss : float
        Mean cross-entropy.
    """
    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, x.shape[0], batch_size):
        out = model(x[i: i + batch_size])
        correct += int((out.argmax(1) == y[i: i + batch_size]).sum())
        loss += float(F.cross_entropy(out.float(), y[i: i + batch_size], reduction="sum"))
    model.train(was_training)
    return correct / x.shape[0], loss / x.shape[0]


def train_loader(ds: MnistDataset, batch_size: int, workers: int, seed: int,
                 device: torch.device) -> DataLoader:
    """The training ``DataLoader``: shuffled from a generator seeded by ``seed``, ``workers``
    loader processes, pinned memory on CUDA.

    Parameters
    ----------
    ds : MnistDataset
        The training split.
    batch_size : int
        Images per mini-batch.
    workers : int
        Loader processes (0: in the main process).
    seed : int
        Seed of the shuffling generator.
    device : torch.device
        The training device (memory is pinned for CUDA).

    Returns
    -------
    loader : torch.utils.data.DataLoader
        Mini-batches ``(x [B, 1, 28, 28], y [B])``.
    """
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
    epoch)``.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier, trained in place.
    train_ds : MnistDataset
        The training split.
    x_test : Tensor
        Test images [m, ...].
    y_test : Tensor
        Test labels [m].
    config : MnistConfig
        Epochs, batch size, learning rate and momentum of the run.
    seed : int
        Seed of the shuffling.
    workers : int
        Loader processes.
    device : torch.device
        Where the model trains.
    checkpoint : str, os.PathLike or None
        Checkpoint file (written every epoch, resumed from when present); None: none.
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).
    desc : str
        Label of the progress bar.

    Returns
    -------
    result : fgln.training.train.TrainResult
        Losses and the history (``test_acc``, ``test_loss``, ``step`` per recorded epoch).
    seconds : float
        Wall-clock time of the training.
    per_epoch : int
        Updates per epoch.
    """
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


def train_mnist(config: MnistConfig = _PAPER, *, seed: int = 0, data: Mnist | None = None,
                device="cpu", workers: int = 1, checkpoint: str | os.PathLike | None = None,
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
    loss of each epoch), ``losses`` [steps], the :func:`.block_statistics` of the hidden block
    at initialisation (suffix ``_init``) and after training (``logsv_B``, ``logsv_J``,
    ``rho_k{k}``), ``seconds`` (training loop, this process), ``seconds_per_epoch``,
    ``epochs_run`` (epochs trained in this process; fewer after a resume), ``n_train``,
    ``n_test``, ``device`` and ``source`` (strings as 0-d unicode arrays), and ``test_correct``
    [n_test] (int8: 1 where the trained model classifies the test image correctly, for paired
    comparisons with baselines on the same images).

    Parameters
    ----------
    config : MnistConfig
        The run's configuration (default: the paper's).
    seed : int
        Start value of the initialisation, batch order and augmentation (>= 0).
    data : Mnist or None
        The two splits; None loads them.
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    workers : int
        Loader processes for the augmentation (>= 0).
    checkpoint : str, os.PathLike or None
        Checkpoint file (written every epoch, resumed from when present).
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).

    Returns
    -------
    result : dict of str to numpy.ndarray, float or int
        The entries listed above.

    Raises
    ------
    TypeError
        If ``config`` is not an MnistConfig or ``seed``, ``workers`` not an integer.
    ValueError
        If ``seed`` or ``workers`` is negative or ``device`` unknown.
    """
    run = prepare_run(config, seed, data, device, workers)
    seed, workers, dev, data = run.seed, run.workers, run.device, run.data
    train_ds, test_ds, x_test, y_test = run.train, run.test, run.x_test, run.y_test
    model = MnistFixedGates.random(n=config.n, L=config.L, p=config.p, seed=seed,
                                   dtype=torch.float32)
    stats0 = block_statistics(*model.hidden_block(), k_spectrum=config.k_spectrum,
                              k_align=config.k_align)
    res, seconds, per_epoch = fit_classifier(
        model, train_ds, x_test, y_test, config, seed=seed, workers=workers, device=dev,
        checkpoint=checkpoint, progress=progress, desc=f"MNIST seed {seed}")
    stats = block_statistics(*model.hidden_block(), k_spectrum=config.k_spectrum,
                             k_align=config.k_align)
    test_correct = _correct(model, x_test, y_test)
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
        "test_correct": test_correct,
    }
    out.update({f"{k}_init": v for k, v in stats0.items()})
    out.update(stats)
    return out


def run_params(config: MnistConfig, seed: int, data: Mnist) -> dict:
    """What one run's result depends on, JSON-serialisable (a cache key's parameters): the
    configuration, the seed, the data source and its sizes. The device is not part of it (a
    GPU result stands for a CPU one).

    Parameters
    ----------
    config : MnistConfig
        The run's configuration.
    seed : int
        The run's seed.
    data : Mnist
        The data it trains on.

    Returns
    -------
    params : dict
        ``config.params()`` with ``seed``, ``source``, ``n_train_total``, ``n_test_total``.
    """
    return {**config.params(), "seed": int(seed), "source": data.source,
            "n_train_total": len(data.train), "n_test_total": len(data.test)}
