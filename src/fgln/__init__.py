"""Fixed-gates linear networks (FGLN).

Tools for studying deep networks whose nonlinear gates are frozen, so that the
input-output Jacobian is a product of random (gated) linear maps. The package
supports the executable Jupyter Book reproducing "Why Deep Jacobian Spectra
Separate": submodules (imported explicitly, e.g. ``from fgln import cache``)
provide the numerics, a disk cache for heavy results, progress reporting and
a single plotting style.
"""

__version__ = "0.1.0"
