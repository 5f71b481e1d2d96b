"""The chapters' trainings as cached, resumable grid tasks (MNIST with fixed gates, with ReLU):
the one wing that joins the science with the book's cache."""

from .mnist_tasks import cached_run, train_point, train_task
from .relu_mnist import (
    MnistRelu,
    cached_relu_run,
    class_overlaps,
    relu_block_measurements,
    train_relu_mnist,
)

__all__ = [
    # mnist_tasks
    "cached_run", "train_task", "train_point",
    # relu_mnist
    "MnistRelu", "train_relu_mnist", "cached_relu_run", "relu_block_measurements",
    "class_overlaps",
]
