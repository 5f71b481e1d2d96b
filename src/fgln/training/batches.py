"""The data a training run iterates over: full-batch ``(x, y)`` tensors, or mini-batches
epoch after epoch with the RNG bookkeeping that lets :func:`fgln.training.train.train` resume in the
middle of an epoch exactly.
"""
from __future__ import annotations

import torch

from .checkpoints import rng_state, set_rng_state

Tensor = torch.Tensor

__all__ = ["is_full_batch", "to_device", "Batches"]


def is_full_batch(data) -> bool:
    """Whether ``data`` is one full batch ``(x, y)`` of two tensors.

    Parameters
    ----------
    data : object
        The training data of a run.

    Returns
    -------
    full : bool
        True for a tuple or list of exactly two tensors.
    """
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and isinstance(data[0], Tensor) and isinstance(data[1], Tensor))


def to_device(x: Tensor, dtype, device) -> Tensor:
    """``x`` on ``device``, cast to ``dtype`` when it is floating point (labels keep theirs).

    Parameters
    ----------
    x : Tensor
        A batch tensor.
    dtype : torch.dtype or None
        Floating dtype to cast to; None: kept.
    device : torch.device or str
        The target device.

    Returns
    -------
    x : Tensor
        The moved (and cast) tensor, same shape.
    """
    if dtype is not None and x.is_floating_point():
        return x.to(device=device, dtype=dtype, non_blocking=True)
    return x.to(device=device, non_blocking=True)


class Batches:
    """Mini-batches epoch after epoch, with the RNG bookkeeping needed for exact resume.

    Parameters
    ----------
    data : iterable
        Iterable of ``(x, y)`` mini-batches, iterated again at every epoch; a ``set_epoch``
        method of its ``dataset`` or ``sampler`` is called at each epoch's start.
    gens : list of torch.Generator
        The generators whose states are snapshotted at each epoch's start.
    cuda : bool
        Whether the CUDA random state is part of the snapshots.
    """

    def __init__(self, data, gens, cuda):
        self.data, self.gens, self.cuda = data, gens, cuda
        self.epoch, self.pos = 0, 0
        self.epoch_rng: dict | None = None
        self._it = None
        try:
            self.length = len(data)
        except TypeError:
            self.length = None

    def restore(self, epoch: int, pos: int, epoch_rng: dict | None, now_rng: dict) -> None:
        """Continue from a checkpointed position: replay the epoch's first ``pos`` batches
        from the epoch's RNG state, then restore the current state.

        Parameters
        ----------
        epoch : int
            Epoch to continue in.
        pos : int
            Batches already consumed in it.
        epoch_rng : dict or None
            Random state at the epoch's start (None: nothing to replay).
        now_rng : dict
            Random state at the checkpoint.
        """
        self.epoch, self.pos, self.epoch_rng = epoch, pos, epoch_rng
        if pos == 0 or epoch_rng is None:
            set_rng_state(now_rng, self.gens)
            return
        set_rng_state(epoch_rng, self.gens)
        self._start_epoch(fresh_snapshot=False)
        for _ in range(pos):
            next(self._it)
        set_rng_state(now_rng, self.gens)

    def _start_epoch(self, fresh_snapshot: bool = True) -> None:
        for obj in (getattr(self.data, "dataset", None), getattr(self.data, "sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(self.epoch)
        if fresh_snapshot:
            self.epoch_rng = rng_state(self.gens, self.cuda)
        self._it = iter(self.data)

    def next(self):
        """The next mini-batch, starting a new epoch when the current one is exhausted.

        Returns
        -------
        batch : tuple
            The next ``(x, y)`` mini-batch.

        Raises
        ------
        ValueError
            If the data yield no batch in an epoch.
        """
        if self._it is None:
            self._start_epoch()
        try:
            batch = next(self._it)
        except StopIteration:
            if self.pos == 0:
                raise ValueError("data yielded no batch in an epoch") from None
            self.epoch += 1
            self.pos = 0
            self._start_epoch()
            batch = next(self._it)
        self.pos += 1
        return batch

    def position(self) -> tuple[int, int, dict | None]:
        """``(epoch, batches consumed in it, RNG state at its start)`` for a checkpoint; the
        end of an epoch is stored as the start of the next one (nothing to skip on resume).

        Returns
        -------
        epoch : int
            Current epoch.
        pos : int
            Batches consumed in it.
        epoch_rng : dict or None
            Random state at its start (None at an epoch boundary).

        Raises
        ------
        ValueError
            If the data yield more batches in an epoch than their length.
        """
        if self.length is not None and self.pos >= self.length:
            # A sampler may draw from its generator when it is exhausted (RandomSampler calls
            # randperm once more at the end): exhaust the iterator now, so that the RNG state
            # saved with this position is the one the next epoch starts from.
            if self._it is not None:
                for _ in self._it:
                    raise ValueError(f"data yielded more than len(data) = {self.length} "
                                     "batches in an epoch")
            return self.epoch + 1, 0, None
        return self.epoch, self.pos, self.epoch_rng
