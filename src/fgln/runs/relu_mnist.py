"""The ReLU analogue of the Section 8 MNIST model, its training run and the measurements
taken on its hidden block at test inputs (the book's chapter 9).

Model (:class:`MnistRelu`): ``784 -> n -> ... -> n -> 10`` without biases,

    logits = W_out relu(W_L relu(... relu(W_1 relu(W_in x)))),

the adapters and the square block of :class:`fgln.mnist.model.MnistFixedGates` with the fixed gates
replaced by ReLU gates, same initialisation (``sigma = 1/sqrt(fan-in)``, the block drawn first
by :func:`fgln.products.sampling.sample_network` from the model's seed) and the same recipe
(:class:`fgln.mnist.model.MnistConfig`; its ``p`` is not used). At an input x the hidden block's
Jacobian is ``J(x) = W_L D_{L-1}(x) ... D_1(x) W_1`` with ``D_l(x)`` the ReLU gates after
``W_l``; :meth:`MnistRelu.block_gates` returns them in the layout of
:func:`fgln.products.sampling.sample_network`, so the chapter 8 measurements
(:func:`fgln.mnist.block_measurements.block_statistics`) apply input by input.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..base.laws import LayerLaw
from ..base.threads import torch_threads
from ..base.validation import check_int
from ..book.cache import cached_resumable
from ..mnist.block_measurements import block_statistics
from ..mnist.data import Mnist
from ..mnist.model import CLASSES, IN_FEATURES, MnistConfig
from ..mnist.run import fit_classifier, prepare_run, run_params
from ..products.partial_products import chain_product
from ..products.sampling import make_generator, network_layers, sample_network

Tensor = torch.Tensor

__all__ = ["MnistRelu", "relu_block_measurements", "class_overlaps", "train_relu_mnist",
           "cached_relu_run", "probe_inputs"]


class MnistRelu(nn.Module):
    """Bias-free ReLU classifier ``784 -> n^(L+1) -> 10``; ``weights``: W_in, W_1..W_L, W_out.

    Parameters
    ----------
    weights : list of Tensor
        ``W_in`` [n, 784], ``W_1..W_L`` [n, n], ``W_out`` [10, n] (copied into parameters).

    Raises
    ------
    ValueError
        If fewer than three weights are given.
    """

    def __init__(self, weights: list[Tensor]):
        super().__init__()
        if len(weights) < 3:
            raise ValueError(f"weights must hold W_in, W_1..W_L, W_out, got {len(weights)}")
        self.weights = nn.ParameterList([nn.Parameter(w.detach().clone()) for w in weights])

    @classmethod
    def random(cls, *, n: int = 128, L: int = 10, seed: int = 0,
               dtype: torch.dtype, device="cpu") -> MnistRelu:
        """The chapter 8 initialisation without gates: the block
        ``sample_network(LayerLaw(n).product(L))`` first, then ``W_in`` (sigma 1/sqrt(784))
        and ``W_out`` (sigma 1/sqrt(n)).

        Parameters
        ----------
        n : int
            Width of the block (>= 1).
        L : int
            Square layers of the block (>= 1).
        seed : int
            Start value of the random stream (>= 0).
        dtype : torch.dtype
            Floating type of the model (float32 to train); required.
        device : str or torch.device
            Where the model lives.

        Returns
        -------
        model : MnistRelu
            The initialised classifier.

        Raises
        ------
        TypeError
            If ``n``, ``L`` or ``seed`` is not an integer.
        ValueError
            If one of them is out of range.
        """
        n = check_int("n", n, 1)
        L = check_int("L", L, 1)
        gen = make_generator(check_int("seed", seed, 0))
        w, _ = sample_network(LayerLaw(n, 1.0, 1.0 / math.sqrt(n)).product(L), seed=gen)
        w_in = torch.randn(n, IN_FEATURES, generator=gen, dtype=torch.float64)
        w_in /= math.sqrt(IN_FEATURES)
        w_out = torch.randn(CLASSES, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
        return cls([x.to(dtype) for x in [w_in, *w[0].unbind(0), w_out]]).to(device)

    @property
    def depth(self) -> int:
        """L, the number of square layers.

        Returns
        -------
        L : int
            Weights less the two adapters.
        """
        return len(self.weights) - 2

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the images ``x``.

        Parameters
        ----------
        x : Tensor
            Images [batch, 1, 28, 28] or [batch, 784].

        Returns
        -------
        logits : Tensor
            [batch, 10].
        """
        h = x.reshape(x.shape[0], -1)
        for w in self.weights[:-1]:
            h = F.relu(h @ w.T)
        return h @ self.weights[-1].T

    def hidden_weights(self, *, dtype: torch.dtype = torch.float64) -> Tensor:
        """The square block ``[W_1, ..., W_L]`` as [L, n, n] (detached, CPU).

        Parameters
        ----------
        dtype : torch.dtype
            Floating type of the copy (default float64).

        Returns
        -------
        weights : Tensor
            ``W_1..W_L`` [L, n, n].
        """
        return torch.stack([w.detach().to("cpu", dtype) for w in self.weights[1:-1]])

    @torch.no_grad()
    def block_gates(self, x: Tensor, *, dtype: torch.dtype = torch.float64) -> Tensor:
        """ReLU gates of the block at images ``x`` [m, 784]: [m, L, n], entry ``l-1`` the
        diagonal of ``D_l(x)`` (``D_L`` is the output interface; Section 7 ignores it).

        Parameters
        ----------
        x : Tensor
            Images [m, 784] (or [m, 1, 28, 28]).
        dtype : torch.dtype
            Floating type of the computation and the result (default float64).

        Returns
        -------
        gates : Tensor
            Gate diagonals in {0, 1} [m, L, n].
        """
        ws = [w.detach().to("cpu", dtype) for w in self.weights]
        h = F.relu(x.reshape(x.shape[0], -1).to("cpu", dtype) @ ws[0].T)
        gates = []
        for w in ws[1:-1]:
            pre = h @ w.T
            gates.append((pre > 0).to(dtype))
            h = F.relu(pre)
        return torch.stack(gates, 1)


def probe_inputs(labels: Tensor, per_class: int) -> Tensor:
    """Indices of the first ``per_class`` test images of every class, class by class.

    Parameters
    ----------
    labels : Tensor
        Test labels [N] in 0..9.
    per_class : int
        Images per class (>= 1).

    Returns
    -------
    indices : Tensor
        Indices into the test set [10 per_class] (fewer where a class has fewer images).

    Raises
    ------
    TypeError
        If ``per_class`` is not an integer.
    ValueError
        If ``per_class`` is below 1.
    """
    per_class = check_int("per_class", per_class, 1)
    idx = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(CLASSES)]
    return torch.cat(idx)


def class_overlaps(overlap: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean subspace overlap between probe inputs of the same class and of different classes.

    Parameters
    ----------
    overlap : numpy.ndarray
        Pairwise overlaps of the probes' top singular subspaces [N, N] (the ``overlap`` of
        :func:`relu_block_measurements`).
    labels : numpy.ndarray
        The probes' classes [N].

    Returns
    -------
    same : float
        Mean over pairs of distinct probes of one class (the diagonal left out).
    different : float
        Mean over pairs from different classes.
    """
    overlap, labels = np.asarray(overlap), np.asarray(labels)
    if overlap.ndim != 2 or overlap.shape != (len(labels), len(labels)):
        raise ValueError(f"overlap must be [N, N] for N = {len(labels)} labels, "
                         f"got shape {overlap.shape}")
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    return float(overlap[same & off].mean()), float(overlap[~same].mean())


@torch.no_grad()
def relu_block_measurements(model: MnistRelu, x: Tensor, *, k_spectrum: int = 30,
                            k_align: int = 10, subspace: int = 10) -> dict[str, np.ndarray]:
    """Chapter 8's block measurements at each image of ``x`` [m, 784], with J(x)'s own gates.

    Returns ``logsv_B`` [m, L, k_spectrum], ``logsv_J`` [m, k_spectrum], ``rho`` [m, L]
    (:func:`fgln.mnist.block_measurements.block_statistics`), ``overlap`` [m, m]:
    ``||U_r(x_a)^T U_r(x_b)||_F^2 / r`` (r = ``subspace``) for the top-r left singular vectors
    of the block's J.

    Parameters
    ----------
    model : MnistRelu
        The classifier.
    x : Tensor
        Images [m, 784].
    k_spectrum : int
        Top singular values kept.
    k_align : int
        Block size of the alignment statistic.
    subspace : int
        Dimension of the compared subspaces.

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above.
    """
    W = model.hidden_weights()
    G = model.block_gates(x)
    res = {"logsv_B": [], "logsv_J": [], "rho": []}
    for g in G:
        st = block_statistics(W, g, k_spectrum=k_spectrum, k_align=(k_align,))
        res["logsv_B"].append(st["logsv_B"])
        res["logsv_J"].append(st["logsv_J"])
        res["rho"].append(st[f"rho_k{k_align}"])
    J = chain_product(network_layers(W.expand(G.shape[0], *W.shape), G, "fgln").unbind(1))
    with torch_threads(1):
        r = subspace
        U = torch.linalg.svd(J)[0][..., :r]
    ov = torch.einsum("aik,bil->abkl", U, U).pow(2).sum((-1, -2)) / r
    out = {k: np.stack(v) for k, v in res.items()}
    out["overlap"] = ov.numpy()
    return out


def train_relu_mnist(config: MnistConfig | None = None, *, seed: int = 0,
                     data: Mnist | None = None, device="cpu", workers: int = 1,
                     checkpoint: str | os.PathLike | None = None, per_class: int = 10,
                     progress: bool | None = None) -> dict[str, np.ndarray]:
    """Train :class:`MnistRelu` with the Section 8 recipe of ``config`` (as
    :func:`fgln.mnist.run.train_mnist`: cross-entropy, SGD with momentum through
    :func:`fgln.training.train.train`, AutoAugment, checkpoints and resume) and measure its block at
    ``per_class`` test images of each class, before (suffix ``_init``) and after training
    (:func:`relu_block_measurements`). Also ``test_acc``, ``test_loss`` [epochs + 1],
    ``config`` default: ``MnistConfig()``;
    ``labels`` [10 per_class], ``seconds``.

    Parameters
    ----------
    config : MnistConfig or None
        The run's configuration (None: ``MnistConfig()``).
    seed : int
        Start value of the initialisation, batch order and augmentation (>= 0).
    data : Mnist or None
        The digits (None: loaded).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    workers : int
        Loader processes for the augmentation (>= 0).
    checkpoint : str, os.PathLike or None
        Checkpoint file (written every epoch, resumed from when present).
    per_class : int
        Test images per class at which the block is measured.
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above.
    """
    config = MnistConfig() if config is None else config
    run = prepare_run(config, seed, data, device, workers)
    seed, workers, dev = run.seed, run.workers, run.device
    train_ds, x_test, y_test = run.train, run.x_test, run.y_test
    model = MnistRelu.random(n=config.n, L=config.L, seed=seed, dtype=torch.float32)
    idx = probe_inputs(y_test, per_class)
    probes = x_test[idx].reshape(len(idx), -1)
    kw = dict(k_spectrum=config.k_spectrum, k_align=min(config.k_align))
    m0 = relu_block_measurements(model, probes, **kw)
    res, seconds, _ = fit_classifier(
        model, train_ds, x_test, y_test, config, seed=seed, workers=workers, device=dev,
        checkpoint=checkpoint, progress=progress, desc=f"MNIST ReLU seed {seed}")
    m1 = relu_block_measurements(model.to("cpu"), probes, **kw)
    out: dict = {"test_acc": np.asarray(res.history["test_acc"], dtype=float),
                 "test_loss": np.asarray(res.history["test_loss"], dtype=float),
                 "labels": y_test[idx].numpy(), "seconds": float(seconds)}
    out.update({f"{k}_init": v for k, v in m0.items()})
    out.update(m1)
    return out


def cached_relu_run(config: MnistConfig, seed: int, data: Mnist, *, per_class: int = 10,
                    cache_dir: str | os.PathLike | None = None, device="cpu", workers: int = 1,
                    progress: bool | None = None) -> dict:
    """:func:`train_relu_mnist` through :func:`fgln.book.cache.cached`, with a checkpoint every
    epoch (removed once the result is cached), as :func:`fgln.runs.mnist_tasks.cached_run`.

    Parameters
    ----------
    config : MnistConfig
        The run's configuration.
    seed : int
        The run's seed (>= 0).
    data : Mnist
        The digits it trains on.
    per_class : int
        Test images per class at which the block is measured.
    cache_dir : str, os.PathLike or None
        Cache folder (default ``$FGLN_CACHE_DIR``, else ``.cache/fgln`` in the checkout).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    workers : int
        Loader processes for the augmentation (>= 0).
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).

    Returns
    -------
    result : dict
        As :func:`train_relu_mnist`.
    """
    params = {**run_params(config, seed, data), "per_class": int(per_class)}

    def compute(ck: Path) -> dict:
        return train_relu_mnist(config, seed=seed, data=data, device=device, workers=workers,
                                checkpoint=ck, per_class=per_class, progress=progress)

    return cached_resumable("mnist_relu_train", params, compute, cache_dir=cache_dir)
