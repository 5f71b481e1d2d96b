"""The single plotting style for every figure of the book.

>>> from fgln.book.plotting import use_style, new_figure, band, save_figure
>>> use_style()
>>> fig, ax = new_figure()
>>> band(ax, x, mean, err, label="depth 32")
>>> save_figure(fig, "fig02.png", fig_dir)

Backend: outside Jupyter on a machine without a display (and with no
``MPLBACKEND`` set) the non-interactive Agg backend is selected, so scripts
and tests never try to open a window. Inside a Jupyter kernel nothing is
forced: the inline backend keeps displaying figures in notebooks and in the
book.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import matplotlib


def _headless() -> bool:
    if os.environ.get("MPLBACKEND"):
        return False
    if "ipykernel" in sys.modules:  # Jupyter kernel: keep inline backend
        return False
    if sys.platform.startswith("linux"):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


if _headless():
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from cycler import cycler  # noqa: E402

from ..base.atomic import atomic_write  # noqa: E402

__all__ = ["use_style", "new_figure", "band", "save_figure", "FIG_NAME", "STYLE"]

FIG_NAME = re.compile(r"^fig(\d\d|[A-GS]\d)[a-z]?\.png$")  # fig02.png; figC1.png; figS2a.png

_COLORS = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab10").colors[:7]]

STYLE: dict = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.color": "0.85",
    "grid.linestyle": "-",
    "grid.linewidth": 0.6,
    "grid.alpha": 0.8,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=_COLORS),
    "lines.linewidth": 1.6,
    "legend.frameon": False,
    "mathtext.fontset": "cm",
}


def use_style() -> None:
    """Apply the book's matplotlib style (idempotent)."""
    matplotlib.rcParams.update(STYLE)


def new_figure(ncols: int = 1, nrows: int = 1,
               figsize: tuple[float, float] | None = None):
    """Create a styled figure; returns ``(fig, axes)`` like ``plt.subplots``
    (a single Axes for 1x1, otherwise an array of Axes).

    Default size: 6.4 x 4.0 in for one panel, 3.6 in per column and 3.2 in
    per row for grids.

    Parameters
    ----------
    ncols, nrows : int
        Panels per row and per column.
    figsize : tuple of float or None
        ``(width, height)`` in inches, as in matplotlib (None: the default above).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    axes : Axes or numpy.ndarray of Axes
        One Axes for 1x1, else an array.
    """
    use_style()
    if figsize is None:
        figsize = (6.4 if ncols == 1 else 3.6 * ncols, 4.0 if nrows == 1 else 3.2 * nrows)
    return plt.subplots(nrows=nrows, ncols=ncols, figsize=figsize,
                        layout="constrained")


def band(ax, x, mean, err, label=None, color=None, alpha: float = 0.25, **kwargs):
    """Plot ``mean`` against ``x`` with a shaded ``mean ± err`` band.

    Returns the line (a ``Line2D``); extra kwargs go to ``ax.plot``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    x, mean, err : array_like
        Abscissae, values and half-widths of the band [m].
    label : str or None
        Legend label.
    color : str or None
        Colour of line and band.
    alpha : float
        Opacity of the band.
    **kwargs
        Passed to ``ax.plot``.

    Returns
    -------
    line : matplotlib.lines.Line2D
        The line.
    """
    x = np.asarray(x)
    mean = np.asarray(mean)
    err = np.asarray(err)
    (line,) = ax.plot(x, mean, label=label, color=color, **kwargs)
    ax.fill_between(x, mean - err, mean + err, color=line.get_color(),
                    alpha=alpha, linewidth=0)
    return line


def save_figure(fig, name: str, fig_dir: str | os.PathLike,
                data: dict[str, np.ndarray] | None = None) -> Path:
    """Save ``fig`` as ``fig_dir/name`` (PNG) atomically; return the path.

    ``name`` must look like ``fig02.png`` or ``fig02b.png`` (the paper's figures), name an
    appendix's own figure (``figC1.png``, ``figD1.png``) or the book's figure for a section of
    the paper that has none (``figS2a.png``). ``data`` (arrays behind the
    figure, e.g. ``{"L": depths, "mean": m, "se": se}``) is saved beside it as
    ``fig02.npz``, so that tests can check what is drawn and not only that a PNG exists.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    name : str
        File name such as ``fig02.png``.
    fig_dir : str or os.PathLike
        Folder of the figures.
    data : dict of str to numpy.ndarray or None
        Arrays behind the figure.

    Returns
    -------
    path : pathlib.Path
        The PNG's path.

    Raises
    ------
    ValueError
        If ``name`` does not look like ``figNN.png``, ``figNNx.png``, ``figC1.png`` or
        ``figS2a.png``.
    """
    if not isinstance(name, str) or not FIG_NAME.match(name):
        raise ValueError(
            f"figure name {name!r} must match {FIG_NAME.pattern} (e.g. 'fig02.png')"
        )
    directory = Path(fig_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"), "wb")
    if data is not None:
        arrays = {k: np.asarray(v) for k, v in data.items()}
        bad = [k for k, v in arrays.items() if v.dtype == object]
        if bad:
            raise TypeError(f"figure data {bad} of {name} must be numeric arrays")
        atomic_write(path.with_suffix(".npz"), lambda fh: np.savez(fh, **arrays), "wb")
    return path
