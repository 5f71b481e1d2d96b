"""The MNIST model of Section 8, its configuration and the linear baseline; the measurements
are taken on its hidden square block (the training run is in :mod:`fgln.mnist.run`).

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
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..base.laws import LayerLaw
from ..base.threads import single_threaded
from ..base.validation import check_int, check_p
from ..products.sampling import make_generator, sample_network
from ..training.networks import FixedGatesNetwork
from .data import Mnist, MnistDataset

Tensor = torch.Tensor

__all__ = ["MnistFixedGates", "MnistConfig", "linear_baseline", "logistic_baseline"]

IN_FEATURES = 28 * 28
CLASSES = 10


class MnistFixedGates(nn.Module):
    """Section 8 classifier: flatten, then one fixed-gates network ``784 -> n^(L+1) -> 10``.

    ``net`` is a :class:`fgln.training.networks.FixedGatesNetwork` of depth ``L + 2`` (weights
    ``W_in, W_1..W_L, W_out``; gates ``D_in, D_1..D_L``). Input images [batch, 1, 28, 28]
    (or [batch, 784]); output logits [batch, 10].

    Parameters
    ----------
    net : FixedGatesNetwork
        Widths ``[784, n, ..., n, 10]`` with a square block.

    Raises
    ------
    ValueError
        If ``net`` does not have such widths.
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
    def random(cls, *, n: int = 128, L: int = 10, p: float = 0.5, seed: int = 0,
               dtype: torch.dtype, device="cpu") -> MnistFixedGates:
        """The Section 8 initialisation (L square layers of width ``n``).

        One generator seeded by ``seed``: first the square block and its gates through
        ``sample_network(LayerLaw(n, p).product(L))`` (so ``hidden_block()`` at initialisation
        equals ``sample_network(LayerLaw(n, p).product(L), seed=seed)`` in float64), then ``W_in``
        [n, 784] (sigma 1/sqrt(784)), ``D_in`` and ``W_out`` [10, n] (sigma 1/sqrt(n)).
        Drawn in float64 and cast to ``dtype``.

        Parameters
        ----------
        n : int
            Width of the block (>= 1).
        L : int
            Square layers of the block (>= 1).
        p : float
            Gate probability in (0, 1].
        seed : int
            Start value of the random stream (>= 0).
        dtype : torch.dtype
            Floating type of the model (float32 to train, float64 to compare with the
            package's samplers); required.
        device : str or torch.device
            Where the model lives.

        Returns
        -------
        model : MnistFixedGates
            The initialised classifier.

        Raises
        ------
        TypeError
            If ``n``, ``L`` or ``seed`` is not an integer, or ``p`` not a number.
        ValueError
            If one of them is out of range.
        """
        n = check_int("n", n, 1)
        L = check_int("L", L, 1)
        p = check_p(p)
        seed = check_int("seed", seed, 0)
        gen = make_generator(seed)
        w, d = sample_network(LayerLaw(n, p, 1.0 / math.sqrt(n)).product(L), seed=gen)
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
        """L, the number of square layers.

        Returns
        -------
        L : int
            Square layers of the block (the network's depth less the two adapters).
        """
        return self.net.depth - 2

    @property
    def width(self) -> int:
        """n, the width of the square block.

        Returns
        -------
        n : int
            Width of the hidden layers.
        """
        return self.net.widths[1]

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
        return self.net(x.reshape(x.shape[0], -1))

    def hidden_block(self, *, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
        """The square block as ``(weights [L, n, n], gates [L, n])`` (detached, on the CPU).

        ``weights[l-1] = W_l``; ``gates[l-1]`` is the diagonal of the gate that follows
        ``W_l`` (``D_l``; ``gates[L-1]`` is the output interface gate, which the Section 7
        products ignore). The layout of :func:`fgln.products.sampling.sample_network` without batch.

        Parameters
        ----------
        dtype : torch.dtype
            Floating type of the copies (default float64).

        Returns
        -------
        weights : Tensor
            ``W_1..W_L`` [L, n, n].
        gates : Tensor
            Gate diagonals [L, n].
        """
        ws = [w.detach().to("cpu", dtype) for w in self.net.weights[1:-1]]
        gs = [g.detach().to("cpu", dtype) for g in self.net.gates[1:]]
        return torch.stack(ws), torch.stack(gs)


# --------------------------------------------------------------------------------------
# baseline
# --------------------------------------------------------------------------------------


def _features(ds: MnistDataset) -> torch.Tensor:
    """Flattened float64 pixels in [0, 1], standardised like the network's inputs when the
    split normalises [m, 784]."""
    x = ds.images.reshape(len(ds), -1).to(torch.float64) / 255.0
    if ds.normalize:
        from .data import MNIST_MEAN, MNIST_STD

        x = (x - MNIST_MEAN) / MNIST_STD
    return x


@single_threaded
def linear_baseline(train: MnistDataset, test: MnistDataset, *, ridge: float = 1e-3,
                    per_image: bool = False):
    """Test accuracy of the least-squares linear map ``x -> M x`` (no bias, the function class of
    the network) fitted to one-hot labels on the un-augmented training images.

    ``M = Y^T X (X^T X + ridge * tr(X^T X)/784 I)^{-1}`` in float64.

    Parameters
    ----------
    train : MnistDataset
        Images the map is fitted on.
    test : MnistDataset
        Images it is scored on.
    ridge : float
        Relative ridge (default 1e-3).
    per_image : bool
        Also return, per test image, 1 where it is classified correctly (default False).

    Returns
    -------
    accuracy : float
        Fraction of test images classified correctly.
    correct : numpy.ndarray
        Only with ``per_image``: int8 [len(test)].
    """
    X, Xt = _features(train), _features(test)
    Y = F.one_hot(train.labels, CLASSES).to(torch.float64)
    G = X.T @ X
    G += ridge * torch.trace(G) / G.shape[0] * torch.eye(G.shape[0], dtype=G.dtype)
    M = torch.linalg.solve(G, X.T @ Y)  # [784, 10]
    correct = (Xt @ M).argmax(1) == test.labels
    acc = float(correct.double().mean())
    return (acc, correct.numpy().astype(np.int8)) if per_image else acc


def _fit_logistic(X: torch.Tensor, y: torch.Tensor, penalty: float, steps: int) -> torch.Tensor:
    """Multinomial logistic regression without bias: ``W`` [784, 10] minimising the mean
    cross-entropy of ``X W`` plus ``penalty/2 ||W||^2`` (L-BFGS from 0, at most ``steps``
    iterations, float64)."""
    W = torch.zeros(X.shape[1], CLASSES, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W], lr=1.0, max_iter=steps, history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(X @ W, y) + 0.5 * penalty * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach()


@single_threaded
def logistic_baseline(train: MnistDataset, test: MnistDataset, *,
                      penalties: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1),
                      holdout: float = 0.125, steps: int = 300) -> dict:
    """Test accuracy of multinomial logistic regression ``x -> softmax(W^T x)`` (no bias: the
    network's function class and its loss) fitted on the un-augmented training images.

    The L2 penalty is chosen among ``penalties`` by the accuracy on the last ``holdout``
    fraction of the training images, fitted on the rest (the test images play no part);
    the chosen penalty is then refitted on all the training images (L-BFGS, float64).

    Parameters
    ----------
    train : MnistDataset
        Images the classifier is fitted on.
    test : MnistDataset
        Images it is scored on.
    penalties : tuple of float
        Candidate penalties (> 0) on ``||W||^2 / 2`` added to the mean cross-entropy.
    holdout : float
        Fraction of the training images held out to choose the penalty (in (0, 1)).
    steps : int
        L-BFGS iterations per fit (>= 1).

    Returns
    -------
    result : dict
        ``accuracy`` (float), ``correct`` (int8 [len(test)]: 1 where correct), ``penalty``
        (the chosen one), ``holdout_accuracy`` (per candidate, numpy [len(penalties)]).

    Raises
    ------
    ValueError
        If ``penalties`` is empty or not positive, or ``holdout`` is out of range.
    """
    if not penalties or min(penalties) <= 0:
        raise ValueError(f"penalties must be positive numbers, got {penalties}")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    steps = check_int("steps", steps, 1)
    X, Xt = _features(train), _features(test)
    y = train.labels
    cut = len(train) - max(1, int(round(holdout * len(train))))
    held = []
    for lam in penalties:
        W = _fit_logistic(X[:cut], y[:cut], lam, steps)
        held.append(float(((X[cut:] @ W).argmax(1) == y[cut:]).double().mean()))
    lam = penalties[int(np.argmax(held))]
    W = _fit_logistic(X, y, lam, steps)
    correct = (Xt @ W).argmax(1) == test.labels
    return {"accuracy": float(correct.double().mean()), "correct": correct.numpy().astype(np.int8),
            "penalty": float(lam), "holdout_accuracy": np.asarray(held)}


# --------------------------------------------------------------------------------------
# training (Section 8)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MnistConfig:
    """Everything a Section 8 training run depends on (besides the seed and the data).

    Defaults: the paper's network (n = 128, L = 10, p = 0.5) trained by mini-batch SGD with
    heavy-ball momentum 0.9, learning rate 0.01, batches of 128, 10 epochs, AutoAugment on.
    ``train_size`` / ``test_size``: use only the first images (None: all).

    Parameters
    ----------
    n, L, p, epochs, batch_size, lr, momentum, augment, train_size, test_size, k_spectrum, \
k_align
        The attributes below, in this order.

    Attributes
    ----------
    n : int
        Width of the square block.
    L : int
        Square layers of the block.
    p : float
        Gate probability.
    epochs : int
        Training epochs.
    batch_size : int
        Mini-batch size.
    lr : float
        Learning rate.
    momentum : float
        Heavy-ball momentum.
    augment : bool
        AutoAugment the training images.
    train_size, test_size : int or None
        Use only the first images of each split (None: all).
    k_spectrum : int
        Top singular values measured on the block.
    k_align : tuple of int
        Block sizes k of the alignment statistics ``rho_k{k}``.
    """

    n: int = 128
    L: int = 10
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

    def splits(self, data: Mnist, *, seed: int = 0) -> tuple[MnistDataset, MnistDataset]:
        """The training and test images a run with ``seed`` uses: the first ``train_size`` /
        ``test_size`` of ``data`` (all when None), the training augmentation (drawn from
        ``seed``) kept only when ``augment``.

        Parameters
        ----------
        data : Mnist
            The two splits.
        seed : int
            Start value of the augmentation draws.

        Returns
        -------
        train, test : MnistDataset
            The splits of the run.
        """
        return (_seeded_subset(data.train, seed, self.train_size, self.augment),
                _seeded_subset(data.test, seed, self.test_size, False))

    def params(self) -> dict:
        """JSON-serialisable form (for :func:`fgln.book.cache.cached`).

        Returns
        -------
        params : dict
            Field name to value (``k_align`` as a list).
        """
        d = asdict(self)
        d["k_align"] = list(self.k_align)
        return d


def _seeded_subset(ds: MnistDataset, seed: int, count: int | None, augment: bool) -> MnistDataset:
    """The first ``count`` images of ``ds`` (all when None), augmentation draws seeded by
    ``seed`` (augmentation kept only when ``augment``).

    Parameters
    ----------
    ds : MnistDataset
        The split.
    seed : int
        Start value of the augmentation draws.
    count : int or None
        How many (in [1, len(ds)]; None: all).
    augment : bool
        Keep the split's augmentation.

    Returns
    -------
    subset : MnistDataset
        The first ``count`` images.
    """
    n = len(ds) if count is None else check_int("size", count, 1, len(ds))
    return MnistDataset(ds.images[:n], ds.labels[:n], augment=ds.augment if augment else None,
                        normalize=ds.normalize, seed=seed)
