"""Closed forms on tensors: exponents, d_i, exterior powers, App. C-D's volumes, defects, limits,
diagonal correlation, singular-value flow (A.1, E.1), G.1, cited laws. Imports base, products."""

from .cited_laws import balanced_mode_trajectory, fuss_catalan_moments, gate_rank_law
from .diagonal_correlation import (
    diagonal_correlation,
    diagonal_correlation_closed_form,
    diagonal_correlation_reference,
    diagonal_correlations,
)
from .exponents import (
    finite_depth_constants,
    finite_depth_constants_mc,
    lyapunov_exponents,
    lyapunov_exponents_approx,
    predicted_log_singular_values,
)
from .exterior import (
    alternating_tensor,
    compound,
    elementary_tensor,
    subsets,
    tensor_power,
    wedge,
    wedge_inner,
)
from .flow_rates import (
    balanced_singular_value_rates,
    partials_aligned_rates,
    partials_jacobian_derivative,
    partials_rate_terms,
    partials_weight_gradients,
    projections,
    prop71_rates,
    remark72_rates,
    singular_value_rates,
)
from .g1_process import (
    fit_g1_constant,
    fit_g1_exponent,
    g1_process,
    g1_processes,
    growth_phase_ratio,
    growth_phase_ratios,
    relative_rms,
    rise_times,
    theory_constant,
)
from .printed_lemmas import (
    balance_gap_rates,
    balance_gaps,
    gated_factors,
    lemma_a1_printed,
    lemma_e1_printed,
)
from .separated_limits import (
    gated_alignment,
    lemma_d4_errors,
    partial_ldl,
    separated_eigh,
    separated_quantities,
    separated_sweep,
)
from .subadditive import haar_split_log_ratios, split_defects
from .wedge_volumes import fixed_rank_log_volumes, gated_log_volumes, wishart_log_volumes

__all__ = [
    "projections",
    "fit_g1_exponent",
    # exponents
    "lyapunov_exponents", "lyapunov_exponents_approx", "finite_depth_constants",
    "finite_depth_constants_mc", "predicted_log_singular_values",
    # cited_laws
    "fuss_catalan_moments", "balanced_mode_trajectory", "gate_rank_law",
    # exterior
    "compound", "wedge", "wedge_inner", "subsets", "tensor_power", "elementary_tensor",
    "alternating_tensor",
    # diagonal_correlation
    "diagonal_correlation", "diagonal_correlations", "diagonal_correlation_closed_form",
    "diagonal_correlation_reference",
    # flow_rates
    "singular_value_rates", "balanced_singular_value_rates", "partials_weight_gradients",
    "partials_jacobian_derivative", "partials_rate_terms", "partials_aligned_rates", "prop71_rates",
    "remark72_rates",
    # printed_lemmas
    "gated_factors", "lemma_a1_printed", "lemma_e1_printed", "balance_gaps", "balance_gap_rates",
    # separated_limits
    "partial_ldl", "separated_eigh", "separated_quantities", "separated_sweep", "lemma_d4_errors",
    "gated_alignment",
    # g1_process
    "g1_process", "g1_processes", "fit_g1_constant", "theory_constant", "relative_rms",
    "growth_phase_ratio", "growth_phase_ratios", "rise_times",
    # wedge_volumes
    "wishart_log_volumes", "gated_log_volumes", "fixed_rank_log_volumes",
    # subadditive
    "split_defects", "haar_split_log_ratios",
]
