"""Trainable fixed-gates networks, the training loop and its records, flow rates, Proposition 7.1's
assumptions, synthetic regressions and their runs, deep linear baselines. Imports lower wings."""

from .balanced_networks import balance_residuals, balanced_masked_network
from .deep_linear import aligned_descent, balance_drift
from .network_assumptions import (
    NetworkDepthScaling,
    alignment_errors,
    column_alignment_error,
    network_depth_scaling,
    prefix_excess_layers,
    prefix_suffix_log_spectra,
    row_sum_alignment_error,
    subspace_alignment,
)
from .network_flow import (
    aligned_rates,
    flow_jacobian_derivative,
    flow_rate_terms,
    flow_singular_value_rates,
    remark72_transpose_errors,
    weight_gradients,
)
from .networks import FixedGatesNetwork, JacobianGradient
from .recorders import DynamicsRecorder, SpectralRecorder, dynamics_snapshot
from .regression_descent import DescentResult, DescentState, regression_descent
from .synthetic_results import BalancedRuns, SyntheticRuns
from .synthetic_runs import (
    Figure1Run,
    balanced_run,
    balanced_runs,
    compress_regression,
    synthetic_run,
    synthetic_task,
)
from .train import DivergenceError, RecordContext, TrainResult, half_mse, train

__all__ = [
    "column_alignment_error", "row_sum_alignment_error",
    # networks
    "FixedGatesNetwork", "JacobianGradient",
    # balanced_networks
    "balanced_masked_network", "balance_residuals",
    # deep_linear
    "aligned_descent", "balance_drift",
    # network_flow
    "weight_gradients", "flow_jacobian_derivative", "flow_rate_terms", "flow_singular_value_rates",
    "aligned_rates", "remark72_transpose_errors",
    # network_assumptions
    "NetworkDepthScaling", "network_depth_scaling", "alignment_errors", "subspace_alignment",
    "prefix_suffix_log_spectra", "prefix_excess_layers",
    # recorders
    "SpectralRecorder", "DynamicsRecorder", "dynamics_snapshot",
    # train
    "train", "TrainResult", "RecordContext", "DivergenceError", "half_mse",
    # regression_descent
    "regression_descent", "DescentState", "DescentResult",
    # synthetic_runs
    "synthetic_task", "compress_regression", "synthetic_run", "balanced_run", "balanced_runs",
    "Figure1Run",
    # synthetic_results
    "SyntheticRuns", "BalancedRuns",
]
