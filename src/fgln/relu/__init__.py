"""The book's own extension (chapter 9): bias-free ReLU networks, J(x) as a gated product,
its regimes and what two inputs share. Imports the science wings below it, never fgln.book."""

from .jacobians import (
    iter_relu_layers,
    relu_forward,
    relu_jacobian,
    relu_log_spectra,
    relu_probe_log_norms,
    relu_products,
)
from .regimes import (
    arccos_shared_fraction,
    input_pair_measurements,
    lognorm_law,
    lognorm_leading_order,
    psg_variance,
    relu_alignment,
    relu_first_order,
)

__all__ = [
    # jacobians
    "relu_forward", "relu_jacobian", "iter_relu_layers", "relu_log_spectra",
    "relu_probe_log_norms", "relu_products",
    # regimes
    "relu_first_order", "lognorm_law", "lognorm_leading_order", "psg_variance",
    "arccos_shared_fraction",
    "input_pair_measurements", "relu_alignment",
]
