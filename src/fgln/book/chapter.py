"""What every chapter does the same way: its scale table, its cached computations, its glued
numbers and statuses.

A chapter opens by building a :class:`Chapter` from its name, its scale table, the scale, its
seed and its cache folder: ``page.cfg`` is the row of ``SCALES`` for this scale (an unknown scale is refused, naming the
known ones), ``page.ledger`` its claims ledger, ``page.run`` a computation cached under its
parameters and the chapter's seed, ``page.grid`` a grid of such computations on an executor,
``page.glue_number`` and ``page.glue_status`` the numbers and verdicts the prose quotes. A
number is formatted once, where it is reported: ``fmt_estimate`` for a mean and its standard
error, :func:`fgln.book.decisions.fmt_number` for a number alone.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from .cache import cached
from .claims import Ledger
from .sweep import run_grid

__all__ = ["Chapter", "SIDES", "fmt_estimate", "scale_row"]

#: What an inconclusive claim's side means, in words.
SIDES = {"both pass": "the claim and its alternative both pass",
         "both fail": "the claim and its alternative both fail",
         "straddles": "an interval straddles a boundary of its region",
         "too coarse": "the test is too coarse to tell the claim from its alternative"}


def scale_row(scales: Mapping[str, Any], scale: str) -> Any:
    """The row of a chapter's scale table for ``scale``.

    Parameters
    ----------
    scales : mapping
        Scale name (``"quick"``, ``"paper"``) -> the chapter's sizes at that scale.
    scale : str
        The scale to build at.

    Returns
    -------
    row : object
        ``scales[scale]``.

    Raises
    ------
    ValueError
        If ``scale`` is not a key of ``scales`` (the message names the known scales).
    """
    if scale not in scales:
        raise ValueError(f"scale must be one of {sorted(scales)}, got {scale!r}")
    return scales[scale]


def fmt_estimate(value: float, se: float) -> str:
    """``'value ± se'`` with as many decimals as the standard error needs (never ``± 0.00``).

    Parameters
    ----------
    value : float
        The estimate.
    se : float
        Its standard error (>= 0).

    Returns
    -------
    text : str
        The estimate and its standard error, e.g. ``'0.512 ± 0.013'``.
    """
    value, se = float(value), float(se)
    digits = max(2, 1 - int(math.floor(math.log10(se)))) if se > 0 else 4
    return f"{value:.{digits}f} ± {se:.{digits}f}"


class Chapter:
    """One chapter's shared machinery (module docstring).

    Parameters
    ----------
    name : str
        The chapter's file stem, e.g. ``"05_depth_scaling"`` (its ledger's name).
    scales : mapping
        The chapter's scale table, ``scale -> sizes``.
    scale : str
        The scale to build at.
    seed : int
        The chapter's base seed (part of every cache key).
    cache_dir : str, os.PathLike or None
        Cache folder (None: :func:`fgln.book.cache.default_cache_dir`).
    executor : str, executor or None
        Where :meth:`grid` runs its tasks (as :func:`fgln.book.sweep.run_grid`).

    Raises
    ------
    ValueError
        If ``scale`` is not in ``scales``.
    """

    def __init__(self, name: str, scales: Mapping[str, Any], scale: str, *, seed: int = 0,
                 cache_dir: str | os.PathLike | None = None, executor=None):
        self.cfg = scale_row(scales, scale)
        self.name, self.scale, self.seed = name, scale, int(seed)
        self.cache_dir, self.executor = cache_dir, executor
        self.ledger = Ledger(name, scale, seed=self.seed)

    def run(self, name: str, params: Mapping[str, Any], compute: Callable[[], dict]) -> dict:
        """A computation cached under its name, its parameters and the chapter's seed.

        Parameters
        ----------
        name : str
            The computation's cache name.
        params : mapping
            What it depends on besides the seed, JSON-serialisable.
        compute : callable
            ``compute() -> dict`` of arrays and numbers.

        Returns
        -------
        result : dict
            As :func:`fgln.book.cache.cached`.
        """
        return cached(name, dict(params, seed=self.seed), compute, self.cache_dir)

    def grid(self, name: str, fn: Callable[..., dict],
             points: Sequence[tuple[Any, Mapping[str, Any]]]) -> list[dict]:
        """One cached task ``fn(obj, **params, seed=seed)`` per point ``(obj, params)``.

        ``obj`` is the paper's object of the point (a :class:`~fgln.base.laws.Product` or a
        :class:`~fgln.base.laws.LayerLaw`); it is not a JSON value, so its fields enter the
        cache key through the task's name.

        Parameters
        ----------
        name : str
            The tasks' cache name.
        fn : callable
            The grid point, ``fn(obj, **params, seed=...)``.
        points : sequence of (object, mapping)
            The points.

        Returns
        -------
        results : list of dict
            One result per point, in order.
        """
        def tag(obj) -> str:
            law = getattr(obj, "law", obj)
            depth = f"-L{obj.L}-{obj.convention}" if hasattr(obj, "law") else ""
            return f"n{law.n}-p{law.p:g}-sigma{law.sigma}-r{law.r}{depth}"
        return run_grid([(f"{name}-{tag(obj)}", dict(params, seed=self.seed), partial(fn, obj))
                         for obj, params in points], executor=self.executor,
                        cache_dir=self.cache_dir)

    @staticmethod
    def glue_number(key: str, value: float) -> None:
        """Glue ``value`` as a float under ``key`` (the prose formats it where it quotes it).

        Parameters
        ----------
        key : str
            The glue key.
        value : float
            The number.
        """
        from myst_nb import glue

        glue(key, float(value), display=False)

    def glue_status(self, key: str, claim_id: str) -> None:
        """Glue the ledger's status of ``claim_id`` (with the side of an inconclusive one), so
        that the prose says what the ledger decided at this scale.

        Parameters
        ----------
        key : str
            The glue key.
        claim_id : str
            A claim recorded in the chapter's ``ledger``.
        """
        from IPython.display import Markdown
        from myst_nb import glue

        c = self.ledger[claim_id]
        glue(key, Markdown(f"**{c.status}**" + (f" ({SIDES[c.side]})" if c.side else "")),
             display=False)
