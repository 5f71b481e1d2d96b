"""Fixed-gates linear networks (FGLN).

Tools for studying deep networks whose nonlinear gates are frozen, so that the input-output
Jacobian is a product of random (gated) linear maps; the package behind the executable book
reproducing "Why Deep Jacobian Spectra Separate". It is cut into wings by layer (``base``,
``products``, ``theory``, ``initialization``, ``training``, ``mnist``, ``relu``; ``book``, the
book's machinery; ``runs``, the chapters' cached trainings), each importing only the wings
below it.

The face of the package is what a reader calls from a chapter: the paper's objects
(:class:`~fgln.base.laws.LayerLaw`, :class:`~fgln.base.laws.Product`, the result type
:class:`~fgln.base.results.Result`) and the closed forms and measurements the chapters use,
each defined in the module of its wing. Everything else is reached through its wing
(``fgln.products``, ``fgln.book``, ...).
"""

__version__ = "0.1.0"

from .base import (
    LayerLaw,
    Product,
    Result,
    conditional_stats,
    find_repo_root,
    fit_slopes,
    mean_se,
    torch_threads,
)
from .initialization import (
    alignment_overlaps,
    appendix_g_panel,
    cluster_sweep,
    depth_scaling_fit,
    depth_slopes,
    figure6_readings,
    finite_depth_offsets,
    gram_moments,
    large_width_limit,
    log_norm_growth,
    overlap_profiles,
    overlap_scaled,
    profile_minimum,
    spectrum_at_depth,
    theorem61_replicates,
    theorem61_sweep,
    top_values_by_depth,
    wedge_log_norms,
)
from .mnist import (
    BundledMnistWarning,
    MnistConfig,
    alignment_reach,
    cluster_measurements,
    linear_baseline,
    load_mnist,
    logistic_baseline,
    split_clusters,
)
from .products import (
    chain_product,
    chain_products,
    factor_log_spectra,
    haar_from_ginibre,
    haar_orthogonal,
    layer_partial_products,
    log_singular_values,
    make_generator,
    network_layers,
    network_partial_products,
    sample_network,
    stream_log_spectra,
    stream_lyapunov_estimates,
)
from .relu import (
    arccos_shared_fraction,
    input_pair_measurements,
    lognorm_law,
    lognorm_leading_order,
    psg_variance,
    relu_alignment,
    relu_first_order,
    relu_log_spectra,
    relu_products,
)
from .theory import (
    alternating_tensor,
    balance_gap_rates,
    balance_gaps,
    balanced_mode_trajectory,
    balanced_singular_value_rates,
    compound,
    diagonal_correlation,
    diagonal_correlation_closed_form,
    diagonal_correlation_reference,
    diagonal_correlations,
    elementary_tensor,
    finite_depth_constants,
    finite_depth_constants_mc,
    fit_g1_constant,
    fit_g1_exponent,
    fixed_rank_log_volumes,
    fuss_catalan_moments,
    g1_processes,
    gate_rank_law,
    gated_alignment,
    gated_factors,
    gated_log_volumes,
    haar_split_log_ratios,
    lemma_a1_printed,
    lemma_d4_errors,
    lemma_e1_printed,
    lyapunov_exponents,
    lyapunov_exponents_approx,
    partial_ldl,
    predicted_log_singular_values,
    projections,
    prop71_rates,
    relative_rms,
    remark72_rates,
    rise_times,
    separated_sweep,
    singular_value_rates,
    split_defects,
    subsets,
    tensor_power,
    theory_constant,
    wedge,
    wedge_inner,
    wishart_log_volumes,
)
from .training import (
    BalancedRuns,
    Figure1Run,
    FixedGatesNetwork,
    SyntheticRuns,
    aligned_descent,
    alignment_errors,
    balance_drift,
    balanced_masked_network,
    balanced_runs,
    column_alignment_error,
    dynamics_snapshot,
    flow_jacobian_derivative,
    flow_singular_value_rates,
    network_depth_scaling,
    prefix_excess_layers,
    prefix_suffix_log_spectra,
    remark72_transpose_errors,
    row_sum_alignment_error,
    weight_gradients,
)

__all__ = [
    # fgln.base
    "LayerLaw", "Product", "Result", "conditional_stats", "find_repo_root", "fit_slopes",
    "mean_se", "torch_threads",
    # fgln.products
    "chain_product", "chain_products", "factor_log_spectra", "haar_from_ginibre", "haar_orthogonal",
    "layer_partial_products", "log_singular_values", "make_generator", "network_layers",
    "network_partial_products", "sample_network", "stream_log_spectra",
    "stream_lyapunov_estimates",
    # fgln.theory
    "alternating_tensor", "balance_gap_rates", "balance_gaps", "balanced_mode_trajectory",
    "balanced_singular_value_rates",
    "compound", "diagonal_correlation", "diagonal_correlation_closed_form",
    "diagonal_correlation_reference", "diagonal_correlations", "elementary_tensor",
    "finite_depth_constants", "finite_depth_constants_mc", "fit_g1_constant", "fit_g1_exponent",
    "fixed_rank_log_volumes", "fuss_catalan_moments", "g1_processes", "gate_rank_law",
    "gated_alignment", "gated_factors", "gated_log_volumes", "haar_split_log_ratios",
    "lemma_a1_printed", "lemma_d4_errors", "lemma_e1_printed", "lyapunov_exponents",
    "lyapunov_exponents_approx", "partial_ldl", "predicted_log_singular_values", "projections",
    "prop71_rates", "relative_rms", "remark72_rates", "rise_times", "separated_sweep",
    "singular_value_rates", "split_defects", "subsets", "tensor_power", "theory_constant", "wedge",
    "wedge_inner", "wishart_log_volumes",
    # fgln.initialization
    "alignment_overlaps", "appendix_g_panel", "cluster_sweep", "depth_scaling_fit", "depth_slopes",
    "figure6_readings", "finite_depth_offsets", "gram_moments", "large_width_limit",
    "log_norm_growth", "overlap_profiles", "overlap_scaled",
    "profile_minimum", "spectrum_at_depth", "theorem61_replicates", "theorem61_sweep",
    "top_values_by_depth", "wedge_log_norms",
    # fgln.training
    "BalancedRuns", "Figure1Run", "FixedGatesNetwork", "SyntheticRuns", "aligned_descent",
    "alignment_errors", "balance_drift", "balanced_masked_network",
    "balanced_runs", "column_alignment_error", "dynamics_snapshot", "flow_jacobian_derivative",
    "flow_singular_value_rates", "network_depth_scaling",
    "prefix_excess_layers", "prefix_suffix_log_spectra", "remark72_transpose_errors",
    "row_sum_alignment_error", "weight_gradients",
    # fgln.mnist
    "BundledMnistWarning", "MnistConfig", "alignment_reach", "cluster_measurements",
    "linear_baseline", "load_mnist", "logistic_baseline", "split_clusters",
    # fgln.relu
    "arccos_shared_fraction", "input_pair_measurements", "lognorm_law", "lognorm_leading_order",
    "psg_variance", "relu_alignment", "relu_first_order", "relu_log_spectra", "relu_products",
]
