"""Fixed-gates linear networks as trainable ``torch.nn.Module`` objects (paper, Section 4).

* :class:`FixedGatesNetwork`: Definition 4.1, ``J = W_L D_{L-1} ... D_1 W_1`` with trainable
  weights ``W_l`` [n_l, n_{l-1}] (rectangular allowed, Remark 4.2) and fixed gates ``D_l``
  (diagonals [n_l], buffers, never parameters). ``forward(x) = x @ J.T`` for rows ``x``.
  ``partial_products()`` gives the Section 7 factors ``A_l, B_l`` with ``J = A_l W_l B_l``.
* :meth:`FixedGatesNetwork.random`: sigma-Ginibre weights and p-gates drawn through the
  package's sampler (:mod:`fgln.products.sampling`), so a seed gives the matrices of
  :func:`fgln.products.sampling.sample_network` for the law of width n, gate probability p
  and scale sigma at depth L, in Definition 4.1's convention (``D_L = I``).
* Balanced masked networks (Proposition 4.5) are built in :mod:`fgln.training.balanced_networks`.
* :class:`JacobianGradient`: captures ``grad_J L`` (the gradient of a loss with respect to the
  end-to-end matrix ``J``) during an ordinary backward pass, also when the network sits inside
  a larger model.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..base.conventions import shared_doc
from ..base.laws import LayerLaw
from ..base.validation import check_int, check_p, check_positive, check_widths, resolve_device
from ..products.partial_products import chain_product, chain_products
from ..products.sampling import make_generator, sample_network

Tensor = torch.Tensor

__all__ = [
    "FixedGatesNetwork",
    "JacobianGradient",
    "find_fixed_gates_network",
]


class FixedGatesNetwork(nn.Module):
    """Definition 4.1: ``J = W_L D_{L-1} W_{L-1} ... D_1 W_1``.

    ``weights``: W_1..W_L, tensors [n_l, n_{l-1}] (copied into ``self.weights``, an
    ``nn.ParameterList``). ``gates``: the diagonals of D_1..D_{L-1}, tensors [n_l] (0/1 for a
    masked network, any real values otherwise), held as buffers ``gate1, ..., gate{L-1}``
    and listed by :attr:`gates`; an L = 1 network has no gate.

    Parameters
    ----------
    weights : sequence of Tensor or Tensor
        ``W_1..W_L`` [n_l, n_{l-1}], floating point, chaining (or one stacked tensor
        [L, n, n]).
    gates : sequence of Tensor or Tensor
        Diagonals of ``D_1..D_{L-1}`` [n_l] (or one stacked tensor [L-1, n]).

    Raises
    ------
    ValueError
        If ``weights`` is empty, a weight is not a 2-d floating-point tensor, the weights do
        not chain, or the gates are not L - 1 diagonals of matching sizes.
    """

    def __init__(self, weights: Sequence[Tensor], gates: Sequence[Tensor]):
        super().__init__()
        weights = list(weights) if not isinstance(weights, Tensor) else list(weights.unbind(0))
        gates = list(gates) if not isinstance(gates, Tensor) else list(gates.unbind(0))
        if len(weights) < 1:
            raise ValueError("weights must hold at least one matrix W_1")
        for i, w in enumerate(weights):
            if not isinstance(w, Tensor):
                raise TypeError(f"weights[{i}] (W_{i + 1}) must be a 2-d tensor [n_l, n_(l-1)], "
                                f"got {type(w).__name__}")
            if w.ndim != 2:
                raise ValueError(f"weights[{i}] (W_{i + 1}) must be a 2-d tensor [n_l, n_(l-1)], "
                                 f"got shape {tuple(w.shape)}")
            if not w.is_floating_point():
                raise TypeError(f"weights[{i}] must be a floating-point tensor, got {w.dtype}")
        for i in range(1, len(weights)):
            if weights[i].shape[1] != weights[i - 1].shape[0]:
                raise ValueError(
                    f"weights do not chain: W_{i + 1} has {weights[i].shape[1]} columns but "
                    f"W_{i} has {weights[i - 1].shape[0]} rows")
        if len(gates) != len(weights) - 1:
            raise ValueError(f"gates must hold L - 1 = {len(weights) - 1} diagonals "
                             f"(D_1..D_(L-1)), got {len(gates)}")
        dtype, device = weights[0].dtype, weights[0].device
        for i, (g, w) in enumerate(zip(gates, weights)):
            g = torch.as_tensor(g)
            if g.ndim != 1 or g.shape[0] != w.shape[0]:
                raise ValueError(f"gates[{i}] (diagonal of D_{i + 1}) must have shape "
                                 f"[{w.shape[0]}], got {tuple(g.shape)}")
        self.weights = nn.ParameterList(
            [nn.Parameter(w.detach().clone().to(dtype=dtype, device=device)) for w in weights])
        for i, g in enumerate(gates):
            self.register_buffer(f"gate{i + 1}",
                                 torch.as_tensor(g).detach().clone().to(dtype=dtype, device=device))

    # ------------------------------------------------------------------ structure
    @property
    def depth(self) -> int:
        """L, the number of weight matrices.

        Returns
        -------
        L : int
            Depth of the network.
        """
        return len(self.weights)

    @property
    def widths(self) -> list[int]:
        """``[n_0, n_1, ..., n_L]``.

        Returns
        -------
        widths : list of int
            Input width, then each layer's output width [L + 1].
        """
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def gates(self) -> list[Tensor]:
        """Diagonals of D_1..D_{L-1} (buffers).

        Returns
        -------
        gates : list of Tensor
            ``L - 1`` diagonals, ``gates[l-1]`` [n_l].
        """
        return [getattr(self, f"gate{i}") for i in range(1, self.depth)]

    def is_masked(self) -> bool:
        """True when every gate entry is 0 or 1 (a Masked Linear Network).

        Returns
        -------
        masked : bool
            Whether every gate is a 0/1 diagonal.
        """
        return all(bool(((g == 0) | (g == 1)).all()) for g in self.gates)

    def extra_repr(self) -> str:
        return f"widths={self.widths}"

    def _gate(self, l: int) -> Tensor | None:
        """Diagonal of D_l for 1 <= l <= L-1, None (identity) for l = 0 or L."""
        return None if l <= 0 or l >= self.depth else getattr(self, f"gate{l}")

    # ------------------------------------------------------------------ products
    def jacobian(self) -> Tensor:
        """``J = W_L D_{L-1} ... D_1 W_1``, shape [n_L, n_0].

        Returns
        -------
        J : Tensor
            [n_L, n_0], differentiable in the weights.
        """
        return chain_product(list(self.weights),
                             [self._gate(l) for l in range(1, self.depth)])

    def layers(self) -> list[Tensor]:
        """``M_l = D_l W_l`` for l = 1..L with ``D_L = I`` (Lemma E.1), so ``J = M_L ... M_1``.

        Returns
        -------
        layers : list of Tensor
            ``M_1..M_L`` [n_l, n_{l-1}].
        """
        out = []
        for l in range(1, self.depth + 1):
            g = self._gate(l)
            w = self.weights[l - 1]
            out.append(w if g is None else g[:, None] * w)
        return out

    def masked_layers(self) -> list[Tensor]:
        """``M_l = D_l W_l D_{l-1}`` for l = 1..L (Proposition 4.5, ``D_0 = D_L = I``).

        Returns
        -------
        layers : list of Tensor
            ``M_1..M_L`` [n_l, n_{l-1}].
        """
        out = []
        for l, m in enumerate(self.layers(), start=1):
            g = self._gate(l - 1)
            out.append(m if g is None else m * g[None, :])
        return out

    def partial_products(self, l: int | None = None):
        """Section 7's ``A_l = W_L D_{L-1} ... W_{l+1} D_l`` [n_L, n_l] and
        ``B_l = D_{l-1} W_{l-1} ... D_1 W_1`` [n_{l-1}, n_0], so that ``J = A_l W_l B_l``
        (``A_L = I``, ``B_1 = I``).

        With ``l`` (1 <= l <= L): the pair ``(A_l, B_l)``. Without: two lists
        ``([A_1, ..., A_L], [B_1, ..., B_L])``, all computed in one pass each.

        Parameters
        ----------
        l : int or None
            Layer index in [1, L]; None for every layer.

        Returns
        -------
        A : Tensor or list of Tensor
            ``A_l`` [n_L, n_l], or the list ``A_1..A_L``.
        B : Tensor or list of Tensor
            ``B_l`` [n_{l-1}, n_0], or the list ``B_1..B_L``.

        Raises
        ------
        TypeError
            If ``l`` is not an integer.
        ValueError
            If ``l`` lies outside [1, L].
        """
        L = self.depth
        if l is not None:
            l = check_int("l", l, 1, L)
        A, B = chain_products(list(self.weights), [self._gate(k) for k in range(1, L)])
        if l is not None:
            return A[l - 1], B[l - 1]
        return A, B

    # ------------------------------------------------------------------ forward
    def _sequential_cheaper(self, rows: int) -> bool:
        n = self.widths
        seq = rows * sum(n[l] * n[l - 1] for l in range(1, len(n)))
        via_j = sum(n[l] * n[l - 1] * n[0] for l in range(2, len(n))) + rows * n[-1] * n[0]
        return seq <= via_j

    def _forward_plan(self, x: Tensor) -> tuple[bool, list[Tensor], list[Tensor]]:
        """``(sequential, weights, gates)`` for ``forward(x)``. Whether to go layer by layer
        depends only on the number of rows and the weights' shapes, so it is decided once per
        ``(rows, shapes)`` and kept in ``self._plans`` (new shapes give a new entry)."""
        weights = list(self.weights._parameters.values())
        if x.shape[-1] != weights[0].shape[1]:
            raise ValueError(f"input must have last dimension n_0 = {weights[0].shape[1]}, "
                             f"got shape {tuple(x.shape)}")
        rows = math.prod(x.shape[:-1]) if x.ndim > 1 else 1
        key = (rows, tuple(w.shape for w in weights))
        plans = self.__dict__.setdefault("_plans", {})
        sequential = plans.get(key)
        if sequential is None:
            if len(plans) >= 64:  # many batch sizes: start over rather than grow
                plans.clear()
            sequential = plans[key] = self._sequential_cheaper(rows)
        buffers = self._buffers
        return sequential, weights, [buffers[f"gate{l}"] for l in range(1, len(weights))]

    def forward(self, x: Tensor) -> Tensor:
        """``x @ J.T`` for ``x`` [..., n_0]; returns [..., n_L].

        The product is evaluated layer by layer or through ``J``, whichever costs fewer
        multiplications for this batch size (the two agree to rounding); the choice is made
        once per batch size and weight shapes.

        Parameters
        ----------
        x : Tensor
            Inputs as rows [..., n_0].

        Returns
        -------
        y : Tensor
            ``x @ J.T`` [..., n_L].

        Raises
        ------
        ValueError
            If the last dimension of ``x`` is not n_0.
        """
        sequential, weights, gates = self._forward_plan(x)
        if not sequential:
            return x @ self.jacobian().T
        h = x @ weights[0].T
        for w, g in zip(weights[1:], gates):
            h = (h * g) @ w.T
        return h

    # ------------------------------------------------------------------ constructors
    @classmethod
    @shared_doc
    def random(cls, widths: Sequence[int], p: float = 1.0, sigma: float | None = None, *,
               r: int | None = None, seed: int | torch.Generator | None = 0,
               dtype: torch.dtype = torch.float64, device="cpu") -> "FixedGatesNetwork":
        """sigma-Ginibre weights and p-gates (Definitions 5.1, 5.2) in Definition 4.1's form.

        Square widths ``[n] * (L + 1)`` draw through
        ``sample_network(LayerLaw(n, p, sigma, r).product(L), seed=seed)``
        (:func:`fgln.products.sampling.sample_network`) and keep gates 1..L-1 (``D_L = I``): the
        same matrices as the Section 5 code. Rectangular widths draw layer by layer in the same
        order with the same generator (W_l, then the gate of size n_l). ``sigma`` defaults to
        ``1/sqrt(n_{l-1})`` (fan-in; ``1/sqrt(n)`` for square networks). ``r`` gives (r,
        p)-gates.

        Parameters
        ----------
        widths : sequence of int
            ``[n_0, ..., n_L]``, each >= 1 (at least two entries).
        p : float
            Gate probability in (0, 1].
        sigma : float or None
            Standard deviation of the weights (> 0); None for ``1/sqrt(n_{l-1})``.
        r : int or None
            The paper's minimum rank: (r, p)-gates (in [1, min(n_1..n_L)]); None for plain
            p-gates.
        %(seed)s
        %(dtype)s
        %(device)s

        Returns
        -------
        net : FixedGatesNetwork
            Depth L = ``len(widths) - 1``.

        Raises
        ------
        TypeError
            If a width or ``r`` is not an integer, or ``p``, ``sigma`` not a number.
        ValueError
            If one of them is out of range.
        """
        widths = check_widths(widths)
        p = check_p(p)
        device = resolve_device(device)
        L = len(widths) - 1
        if len(set(widths)) == 1:
            n = widths[0]
            w, d = sample_network(LayerLaw(n, p, sigma, r).product(L), seed=seed, dtype=dtype,
                                  device=device)
            return cls(list(w[0].unbind(0)), list(d[0, : L - 1].unbind(0)))
        weights, gates = _draw_rectangular(widths, p, sigma, r, seed, dtype, device)
        return cls(weights, gates)


def _draw_rectangular(widths, p, sigma, r, seed, dtype, device):
    """Layer-by-layer draw for any widths, in the order of ``fgln.products.sampling.iter_network``:
    W_l [n_l, n_{l-1}] from ``randn * sigma``, then the p-gate of size n_l (no draw when
    p = 1; rejection until rank >= r for (r, p)-gates). Returns (weights, gates 1..L-1)."""
    L = len(widths) - 1
    if r is not None:
        r = check_int("r", r, 1, min(widths[1:]))
    if sigma is not None:
        sigma = check_positive("sigma", sigma)
    gen = make_generator(seed, device=device)
    weights, gates = [], []
    for l in range(1, L + 1):
        s = sigma if sigma is not None else 1.0 / math.sqrt(widths[l - 1])
        weights.append(torch.randn(1, widths[l], widths[l - 1], generator=gen, dtype=dtype,
                                   device=device)[0] * s)
        n = widths[l]
        if p == 1.0:
            g = torch.ones(n, dtype=dtype, device=device)
        else:
            g = torch.rand(1, n, generator=gen, dtype=dtype, device=device)[0] < p
            while r is not None and int(g.sum()) < r:
                g = torch.rand(1, n, generator=gen, dtype=dtype, device=device)[0] < p
            g = g.to(dtype)
        gates.append(g)
    return weights, gates[: L - 1]


def find_fixed_gates_network(model: nn.Module) -> FixedGatesNetwork | None:
    """``model`` itself if it is a :class:`FixedGatesNetwork`, else its first such submodule.

    Parameters
    ----------
    model : torch.nn.Module
        The model to search.

    Returns
    -------
    net : FixedGatesNetwork or None
        None when the model holds none.
    """
    if isinstance(model, FixedGatesNetwork):
        return model
    for m in model.modules():
        if isinstance(m, FixedGatesNetwork):
            return m
    return None


class JacobianGradient:
    """Capture ``grad_J L`` [n_L, n_0] during backward passes through ``net``.

    ``grad_J L = sum over rows of (dL/d output)^T (input)``: the exact gradient with respect to
    the end-to-end matrix ``J``, whatever comes before or after ``net`` in the model::

        with JacobianGradient(net) as cap:
            loss_fn(model(x), y).backward()
        G = cap.grad          # None if no backward pass went through net

    Parameters
    ----------
    net : FixedGatesNetwork
        The network whose end-to-end gradient is captured.

    Attributes
    ----------
    grad : Tensor or None
        ``grad_J L`` [n_L, n_0], summed over the backward passes inside the ``with`` block.
    """

    def __init__(self, net: FixedGatesNetwork):
        self.net = net
        self.grad: Tensor | None = None
        self._handle = None

    def _hook(self, module, inputs, output):
        if not output.requires_grad:
            return
        x = inputs[0].detach()

        def grad_hook(g: Tensor):
            gj = g.detach().reshape(-1, g.shape[-1]).T @ x.reshape(-1, x.shape[-1])
            self.grad = gj if self.grad is None else self.grad + gj

        output.register_hook(grad_hook)

    def __enter__(self) -> "JacobianGradient":
        self.grad = None
        self._handle = self.net.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
