"""Deep products of gated Ginibre layers: the one sampler, the running QR of a product, graded
SVDs, partial products and exact log-spectra (Sections 5-7). Imports only fgln.base."""

from .accumulator import QRInterval, SpectrumAccumulator, accumulate, accumulate_factors
from .partial_products import (
    chain_product,
    chain_products,
    layer_partial_products,
    network_partial_products,
)
from .sampling import (
    haar_from_ginibre,
    haar_orthogonal,
    iter_factors,
    iter_layers,
    make_generator,
    network_layers,
    sample_layers,
    sample_network,
)
from .spectra import (
    factor_log_spectra,
    log_singular_values,
    log_spectra_by_depth,
    lyapunov_estimates,
    stream_log_spectra,
    stream_lyapunov_estimates,
)

__all__ = [
    "chain_products",
    "chain_product",
    "make_generator",
    # sampling
    "sample_network", "network_layers", "sample_layers", "iter_layers", "iter_factors",
    "haar_orthogonal", "haar_from_ginibre",
    # accumulator
    "SpectrumAccumulator", "QRInterval", "accumulate", "accumulate_factors",
    # partial_products
    "layer_partial_products", "network_partial_products",
    # spectra
    "log_singular_values", "log_spectra_by_depth", "stream_log_spectra", "factor_log_spectra",
    "lyapunov_estimates", "stream_lyapunov_estimates",
]
