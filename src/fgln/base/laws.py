"""The paper's random objects as values: the law of one gated layer and a product of L of them.

A :class:`LayerLaw` is Definitions 5.1-5.2: ``M = D W`` with ``W`` an ``n x n`` matrix of
i.i.d. N(0, sigma^2) entries and ``D`` a diagonal p-gate (i.i.d. Bernoulli(p) entries), or an
(r, p)-gate (a p-gate conditioned on rank >= r). A :class:`Product` is L such layers under a
stated convention (Section 5: every layer gated; Definition 4.1: the last gate is I).

Closed forms and simulations take the same object first: ``lyapunov_exponents(law, k)`` next
to ``wedge_log_norms(law, k, replicates)``, ``predicted_log_singular_values(product, k)``
next to ``stream_log_spectra(product, replicates)``. The object holds every default and its
meaning once: ``sigma=None`` is the paper's ``1/sqrt(n)``, ``r=None`` plain p-gates,
``p=1`` no gate; the ReLU networks of chapter 9 use :meth:`LayerLaw.he`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .validation import check_int, check_network

__all__ = ["LayerLaw", "Product", "CONVENTIONS", "check_law", "check_product"]

#: The two ways of reading "a product of L layers": ``"section5"`` gates every layer,
#: ``J_L = D_L W_L ... D_1 W_1``; ``"fgln"`` (Definition 4.1) leaves the last layer
#: ungated, ``J = W_L D_{L-1} W_{L-1} ... D_1 W_1``.
CONVENTIONS = ("section5", "fgln")


@dataclass(frozen=True)
class LayerLaw:
    """The law of one gated Ginibre layer ``M = D W`` (Definitions 5.1 and 5.2).

    Parameters
    ----------
    n : int
        Width: ``W`` and ``D`` are ``n x n`` (>= 1).
    p : float
        Probability that a gate is open, in (0, 1]; 1 means no gate (plain Ginibre layers).
    sigma : float or None
        Standard deviation of the entries of ``W`` (> 0); None means the paper's scaling
        ``1/sqrt(n)`` (see :attr:`scale`).
    r : int or None
        The paper's minimum rank: (r, p)-gates, p-gates conditioned on rank >= r
        (Definition 5.2), r in [1, n]; None means plain p-gates. In a closed form, plain
        p-gates at index i are the (i, p)-gates (a product has ``s_i > 0`` exactly when every
        gate has rank >= i), so ``r=None`` and the simulation it describes agree index by
        index.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range, or rank ``r`` is so unlikely under Bernoulli(p) gates
        that the rejection sampler of (r, p)-gates would not terminate.

    Examples
    --------
    >>> law = LayerLaw(64, p=0.5)
    >>> round(law.scale, 4)
    0.125
    >>> LayerLaw.he(64).scale == (2 / 64) ** 0.5
    True
    """

    n: int
    p: float = 1.0
    sigma: float | None = None
    r: int | None = None

    def __post_init__(self) -> None:
        n, _, p, sigma, r = check_network(self.n, 1, self.p, self.sigma, self.r)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "sigma", None if self.sigma is None else sigma)
        object.__setattr__(self, "r", r)

    @classmethod
    def he(cls, n: int, p: float = 0.5) -> LayerLaw:
        """He's initialisation of a ReLU layer: ``sigma = sqrt(2/n)``, gates open with ``p``.

        Parameters
        ----------
        n : int
            Width (>= 1).
        p : float
            Probability that a gate is open (0.5: a ReLU unit at a symmetric input).

        Returns
        -------
        law : LayerLaw
            ``LayerLaw(n, p, sigma=sqrt(2/n))``.
        """
        return cls(n, p, math.sqrt(2.0 / check_int("n", n, 1)))

    @property
    def scale(self) -> float:
        """The entries' standard deviation with the default resolved.

        Returns
        -------
        scale : float
            ``sigma``, or ``1/sqrt(n)`` when ``sigma`` is None.
        """
        return 1.0 / math.sqrt(self.n) if self.sigma is None else float(self.sigma)

    def replace(self, **changes) -> LayerLaw:
        """A copy with some fields changed (``law.replace(p=1.0)``), validated again.

        Parameters
        ----------
        **changes
            New values of ``n``, ``p``, ``sigma`` or ``r``.

        Returns
        -------
        law : LayerLaw
            The changed copy.
        """
        return replace(self, **changes)

    def product(self, L: int, convention: str = "section5") -> Product:
        """L independent layers of this law, multiplied under ``convention``.

        Parameters
        ----------
        L : int
            Depth, the number of layers (>= 1).
        convention : {"section5", "fgln"}
            Every layer gated (Section 5), or the last one ungated (Definition 4.1).

        Returns
        -------
        product : Product
            ``Product(self, L, convention)``.
        """
        return Product(self, L, convention)


@dataclass(frozen=True)
class Product:
    """A product of L independent layers of one law, ``J_L = M_L ... M_1`` (Sections 4-7).

    Parameters
    ----------
    law : LayerLaw
        The law of every layer.
    L : int
        Depth, the number of layers (>= 1).
    convention : {"section5", "fgln"}
        ``"section5"``: every layer gated, ``J_L = D_L W_L ... D_1 W_1`` (Section 5);
        ``"fgln"``: the last gate is the identity, ``J = W_L D_{L-1} ... D_1 W_1``
        (Definition 4.1).

    Raises
    ------
    TypeError
        If ``law`` is not a :class:`LayerLaw` or ``L`` not an integer.
    ValueError
        If ``L < 1`` or the convention is unknown.
    """

    law: LayerLaw
    L: int
    convention: str = "section5"

    def __post_init__(self) -> None:
        if not isinstance(self.law, LayerLaw):
            raise TypeError(f"law must be a LayerLaw, got {type(self.law).__name__}")
        object.__setattr__(self, "L", check_int("L", self.L, 1))
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be 'section5' or 'fgln', got {self.convention!r}")

    @property
    def n(self) -> int:
        """The width of every layer.

        Returns
        -------
        n : int
            ``law.n``.
        """
        return self.law.n

    def network(self) -> Product:
        """This product, checked to be a network's: Definition 4.1's convention (last gate I).

        Returns
        -------
        product : Product
            ``self``.

        Raises
        ------
        ValueError
            If the convention is not ``"fgln"``: the measurements on a network's partial
            products (Sections 6-8) read ``J = W_L D_{L-1} ... D_1 W_1``.
        """
        if self.convention != "fgln":
            raise ValueError("a network's product has the convention 'fgln' (Definition 4.1: the "
                             "last gate is I), e.g. law.product(L, 'fgln'); got "
                             f"{self.convention!r}")
        return self

    def at_depth(self, L: int) -> Product:
        """The same product at another depth.

        Parameters
        ----------
        L : int
            Depth (>= 1).

        Returns
        -------
        product : Product
            ``Product(self.law, L, self.convention)``.
        """
        return Product(self.law, L, self.convention)


def check_law(law) -> LayerLaw:
    """``law`` if it is a :class:`LayerLaw`, else ``TypeError``.

    Parameters
    ----------
    law : LayerLaw
        The object to check.

    Returns
    -------
    law : LayerLaw
        ``law`` itself.

    Raises
    ------
    TypeError
        If ``law`` is anything else.
    """
    if not isinstance(law, LayerLaw):
        raise TypeError(f"law must be a LayerLaw, e.g. LayerLaw(n, p), got {type(law).__name__}")
    return law


def check_product(product) -> Product:
    """``product`` if it is a :class:`Product`, else ``TypeError``.

    Parameters
    ----------
    product : Product
        The object to check.

    Returns
    -------
    product : Product
        ``product`` itself.

    Raises
    ------
    TypeError
        If ``product`` is anything else (a :class:`LayerLaw` included: give it a depth with
        ``law.product(L)``).
    """
    if not isinstance(product, Product):
        raise TypeError("product must be a Product, e.g. LayerLaw(n, p).product(L), got "
                        f"{type(product).__name__}")
    return product
