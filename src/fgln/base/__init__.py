"""What every layer needs: argument checks, results stacked and averaged over replicates, threads,
progress bars, atomic writes and the project's local folders. Imports nothing of fgln."""

from .atomic import atomic_write
from .laws import LayerLaw, Product
from .paths import find_repo_root, local_dir
from .progress import progress, progress_enabled
from .results import Result
from .statistics import conditional_stats, fit_slopes, mean_se, stack_replicates
from .threads import single_threaded, torch_threads

__all__ = [
    "LayerLaw", "Product", "Result",
    # statistics
    "stack_replicates", "conditional_stats", "mean_se", "fit_slopes",
    # threads
    "torch_threads", "single_threaded",
    # progress
    "progress", "progress_enabled",
    # atomic
    "atomic_write",
    # paths
    "find_repo_root", "local_dir",
]
