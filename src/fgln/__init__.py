"""Fixed-gates linear networks (FGLN).

Tools for studying deep networks whose nonlinear gates are frozen, so that the
input-output Jacobian is a product of random (gated) linear maps. The package
supports the executable Jupyter Book reproducing "Why Deep Jacobian Spectra
Separate". The package is cut into wings by layer (``base``, ``products``, ``theory``,
``initialization``, ``training``, ``mnist``; and ``book``, the book's machinery), each
importing only the wings below it. The numerics the chapters call are importable from here
(each name is defined in the module listed beside it); the book's machinery is imported
from its wing: :mod:`fgln.book.cache` (disk cache), :mod:`fgln.book.claims` (claims
ledger), :mod:`fgln.book.plotting` (figure style), :mod:`fgln.book.sweep` (grids of
cached tasks on an executor); ``relu`` holds the ReLU networks of chapter 9 and ``runs``
the cached training runs that the chapters spread over executors.
"""

__version__ = "0.1.0"

from .base import (
    LayerLaw,
    Product,
    Result,
    conditional_stats,
    fit_slopes,
    mean_se,
    stack_replicates,
)
from .initialization import (
    alignment_overlaps,
    cluster_limit,
    cluster_sweep,
    depth_scaling_fit,
    finite_depth_offsets,
    overlap_profiles,
    overlap_scaled,
    spectrum_at_depth,
    synthetic_product,
    theorem61_sweep,
    top_values_by_depth,
    wedge_log_norms,
)
from .mnist import (
    MnistConfig,
    MnistFixedGates,
    alignment_reach,
    block_statistics,
    cluster_measurements,
    linear_baseline,
    load_mnist,
    split_clusters,
    train_mnist,
)
from .products import (
    haar_from_ginibre,
    haar_orthogonal,
    iter_layers,
    layer_partial_products,
    log_singular_values,
    log_spectra_by_depth,
    lyapunov_estimates,
    network_layers,
    network_partial_products,
    sample_layers,
    sample_network,
    stream_log_spectra,
    stream_lyapunov_estimates,
)
from .relu import (
    arccos_shared_fraction,
    input_pair_measurements,
    iter_relu_layers,
    lognorm_law,
    lognorm_leading_order,
    psg_variance,
    relu_alignment,
    relu_first_order,
    relu_forward,
    relu_jacobian,
    relu_log_spectra,
    relu_products,
)
from .theory import (
    balanced_singular_value_rates,
    diagonal_correlation,
    diagonal_correlation_closed_form,
    diagonal_correlation_reference,
    diagonal_correlations,
    finite_depth_constants,
    finite_depth_constants_mc,
    fit_g1_constant,
    g1_process,
    g1_processes,
    growth_phase_ratio,
    growth_phase_ratios,
    lyapunov_exponents,
    lyapunov_exponents_approx,
    predicted_log_singular_values,
    prop71_rates,
    relative_rms,
    remark72_rates,
    rise_times,
    singular_value_rates,
    theory_constant,
)
from .training import (
    BalancedRuns,
    DivergenceError,
    DynamicsRecorder,
    Figure1Run,
    FixedGatesNetwork,
    JacobianGradient,
    SpectralRecorder,
    SyntheticRuns,
    alignment_errors,
    balance_residuals,
    balanced_masked_network,
    balanced_run,
    compress_regression,
    dynamics_snapshot,
    flow_jacobian_derivative,
    flow_singular_value_rates,
    half_mse,
    network_depth_scaling,
    subspace_alignment,
    synthetic_run,
    synthetic_task,
    train,
    weight_gradients,
)

__all__ = [
    # fgln.base.laws, fgln.base.results: the paper's objects and the result type
    "LayerLaw", "Product", "Result",
    # fgln.products.sampling: gated Ginibre layers, Haar matrices
    "sample_network", "network_layers", "sample_layers",
    "iter_layers", "haar_orthogonal", "haar_from_ginibre",
    # fgln.products.spectra: exact log-spectra and QR exponent estimates of deep products
    "log_singular_values", "log_spectra_by_depth", "stream_log_spectra",
    "lyapunov_estimates", "stream_lyapunov_estimates",
    # fgln.products.partial_products: (A, B) of Sections 6 and 7
    "layer_partial_products", "network_partial_products",
    # fgln.theory.exponents: closed forms of Section 5
    "lyapunov_exponents", "lyapunov_exponents_approx", "finite_depth_constants",
    "finite_depth_constants_mc", "predicted_log_singular_values",
    # fgln.initialization.depth_scaling: Section 5 and Figure 4 measurements
    "top_values_by_depth", "spectrum_at_depth", "wedge_log_norms", "finite_depth_offsets",
    "depth_scaling_fit",
    # fgln.theory.diagonal_correlation: Appendix F
    "diagonal_correlation", "diagonal_correlations", "diagonal_correlation_closed_form",
    "diagonal_correlation_reference",
    # fgln.initialization.alignment: Sections 6-8 on networks
    "alignment_overlaps", "overlap_profiles",
    # fgln.initialization.synthetic_alignment: Theorem 6.1 and Remarks 6.2, 6.3
    "synthetic_product", "overlap_scaled", "theorem61_sweep", "cluster_limit",
    "cluster_sweep",
    # fgln.base.statistics: results stacked over replicates, means and standard errors, line fits
    "stack_replicates", "conditional_stats", "mean_se", "fit_slopes",
    # fgln.training.networks: fixed-gates networks as modules (Section 4)
    "FixedGatesNetwork", "JacobianGradient",
    # fgln.training.balanced_networks: balanced masked networks (Proposition 4.5)
    "balanced_masked_network", "balance_residuals",
    # fgln.training.train: gradient descent with recording, checkpoints and resume
    "train", "DivergenceError", "half_mse",
    # fgln.training.synthetic_runs: the synthetic regressions of Chapters 1, 4 and 7
    "synthetic_task", "compress_regression", "synthetic_run", "balanced_run", "Figure1Run",
    # fgln.training.synthetic_results: the synthetic runs stacked over replicates, by name
    "SyntheticRuns", "BalancedRuns",
    # fgln.theory.flow_rates, fgln.training.network_flow: how singular values move (Lemmas A.1,
    # E.1, E.2, Propositions 4.5, 7.1, Remark 7.2)
    "singular_value_rates", "balanced_singular_value_rates", "weight_gradients",
    "flow_jacobian_derivative", "flow_singular_value_rates", "prop71_rates", "remark72_rates",
    # fgln.training.network_assumptions: Proposition 7.1's assumptions (i) and (ii) on a network
    "network_depth_scaling", "alignment_errors", "subspace_alignment",
    # fgln.training.recorders: what training records (Chapter 7's snapshot)
    "dynamics_snapshot", "SpectralRecorder", "DynamicsRecorder",
    # fgln.theory.g1_process: Appendix G.1's scalar process, summaries of a run
    "g1_process", "g1_processes", "fit_g1_constant", "theory_constant", "relative_rms",
    "growth_phase_ratio", "growth_phase_ratios", "rise_times",
    # fgln.mnist.data, fgln.mnist.model: the MNIST experiment of Section 8
    "load_mnist", "MnistConfig", "MnistFixedGates", "train_mnist", "linear_baseline",
    # fgln.relu: ReLU networks, their Jacobians and regimes (chapter 9)
    "relu_first_order", "relu_forward", "relu_jacobian", "iter_relu_layers",
    "relu_log_spectra",
    "relu_products", "lognorm_law", "lognorm_leading_order", "psg_variance",
    "arccos_shared_fraction", "input_pair_measurements", "relu_alignment",
    # fgln.mnist.block_measurements: measurements on its hidden block (Figures 4 and 5)
    "block_statistics", "split_clusters", "cluster_measurements", "alignment_reach",
]
