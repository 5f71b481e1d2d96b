"""The MNIST experiment of Section 8: the digits (full set or bundled), the model and its
training run, measurements on its hidden block. Imports every science wing, never fgln.book."""

from .block_measurements import (
    alignment_reach,
    block_statistics,
    cluster_measurements,
    split_clusters,
)
from .data import BundledMnistWarning, Mnist, MnistDataset, MnistUnavailableError, load_mnist
from .model import MnistConfig, MnistFixedGates, linear_baseline, logistic_baseline
from .run import run_params, train_mnist

__all__ = [
    "logistic_baseline",
    # data
    "load_mnist", "Mnist", "MnistDataset", "BundledMnistWarning", "MnistUnavailableError",
    # model
    "MnistFixedGates", "MnistConfig", "train_mnist", "run_params", "linear_baseline",
    # block_measurements
    "block_statistics", "split_clusters", "cluster_measurements", "alignment_reach",
]
