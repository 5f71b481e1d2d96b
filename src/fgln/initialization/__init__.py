"""Measurements at initialization: depth scaling (Section 5), alignment of partial products
(Section 6), synthetic products (Theorem 6.1), moments and norms. Imports base, products, theory."""

from .alignment import (
    alignment_overlaps,
    appendix_g_panel,
    figure6_readings,
    overlap_profiles,
    profile_minimum,
)
from .depth_scaling import (
    depth_scaling_fit,
    depth_slopes,
    finite_depth_offsets,
    spectrum_at_depth,
    top_values_by_depth,
    wedge_log_norms,
)
from .product_moments import gram_moments, large_width_limit, log_norm_growth
from .synthetic_alignment import (
    cluster_limit,
    cluster_sweep,
    overlap_scaled,
    synthetic_product,
    theorem61_replicates,
    theorem61_sweep,
)

__all__ = [
    "figure6_readings",
    "depth_slopes",
    "appendix_g_panel",
    # depth_scaling
    "top_values_by_depth", "spectrum_at_depth", "wedge_log_norms", "finite_depth_offsets",
    "depth_scaling_fit",
    # alignment
    "alignment_overlaps", "overlap_profiles", "profile_minimum",
    # product_moments
    "gram_moments", "log_norm_growth", "large_width_limit",
    # synthetic_alignment
    "synthetic_product", "overlap_scaled", "theorem61_sweep", "theorem61_replicates",
    "cluster_limit", "cluster_sweep",
]
