"""The parts of :func:`fgln.training.train.train` that are not its loop: the step plan, the
optimiser, one forward and backward pass, and the checkpoint (save and resume)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from ..base.validation import check_int
from .batches import Batches, is_full_batch, to_device
from .checkpoints import (
    FORMAT,
    history_from_tensors,
    history_to_tensors,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .networks import JacobianGradient

Tensor = torch.Tensor


@dataclass(frozen=True)
class StepPlan:
    """How many updates a run makes (``total``), on full-batch data or on mini-batches of
    ``per_epoch`` batches an epoch (None when the data have no length)."""

    full_batch: bool
    total: int
    per_epoch: int | None


def plan_steps(data, steps: int | None, epochs: int | None) -> StepPlan:
    """Check ``data``, ``steps`` and ``epochs`` and plan the steps: full-batch ``(x, y)``
    needs ``steps``; mini-batches take the fewer of ``steps`` and ``epochs`` epochs.

    Parameters
    ----------
    data : tuple of Tensor or iterable
        Full-batch ``(x, y)`` tensors, or an iterable of ``(x, y)`` mini-batches (a
        ``DataLoader``, say).
    steps : int or None
        Number of updates (>= 0); required with full-batch data.
    epochs : int or None
        Number of passes over mini-batch data (>= 0); needs data with a length.

    Returns
    -------
    plan : StepPlan
        Whether the data are full-batch, the number of updates and the batches per epoch.

    Raises
    ------
    TypeError
        If ``data`` is neither ``(x, y)`` tensors nor an iterable.
    ValueError
        If ``steps``/``epochs`` are missing or do not apply to the data, or ``x`` and ``y``
        have different numbers of rows.
    """
    if is_full_batch(data):
        if steps is None:
            raise ValueError("steps is required with full-batch data (x, y)")
        if epochs is not None:
            raise ValueError("epochs applies to mini-batch data; give steps for (x, y)")
        total = check_int("steps", steps, 0)
        if data[0].shape[0] != data[1].shape[0]:
            raise ValueError(f"data: x and y have {data[0].shape[0]} and {data[1].shape[0]} rows")
        return StepPlan(True, total, None)
    if not isinstance(data, Iterable):
        raise TypeError("data must be (x, y) tensors or an iterable of (x, y) batches")
    if steps is None and epochs is None:
        raise ValueError("give epochs and/or steps for mini-batch data")
    per_epoch = None
    try:
        per_epoch = len(data)
    except TypeError:
        pass
    if epochs is not None:
        epochs = check_int("epochs", epochs, 0)
        if per_epoch is None:
            raise ValueError("epochs needs data with a length; give steps instead")
    bounds = [check_int("steps", steps, 0)] if steps is not None else []
    if epochs is not None:
        bounds.append(epochs * per_epoch)
    return StepPlan(False, min(bounds), per_epoch)


def make_optimizer(optimizer, params, lr, momentum, weight_decay):
    """The optimiser of a run, by name or from a callable of the parameters.

    Parameters
    ----------
    optimizer : str or callable
        ``"sgd"``, ``"adam"`` or ``"adamw"``, or a callable taking ``params`` and returning a
        ``torch.optim.Optimizer``.
    params : iterable of Tensor
        The parameters to optimise.
    lr : float
        Learning rate.
    momentum : float
        Momentum (SGD only).
    weight_decay : float
        Weight decay.

    Returns
    -------
    opt : torch.optim.Optimizer
        The optimiser over ``params``.

    Raises
    ------
    ValueError
        If the name is unknown or the callable returns something else than an optimiser.
    """
    if callable(optimizer) and not isinstance(optimizer, str):
        opt = optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ValueError("optimizer callable must return a torch.optim.Optimizer")
        return opt
    name = str(optimizer).lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd', 'adam', 'adamw' or a callable, got {optimizer!r}")


def forward_backward(model, net, loss_fn, opt, minibatch, dtype, device, want_grad_j: bool):
    """One forward and backward pass on ``minibatch``: ``(loss, grad_J)``, ``grad_J`` captured on
    ``net`` when asked for (else None).

    Parameters
    ----------
    model : torch.nn.Module
        The trained model.
    net : FixedGatesNetwork or None
        The fixed-gates part of ``model`` whose Jacobian gradient is captured.
    loss_fn : callable
        ``loss_fn(model(x), y)``, a scalar tensor.
    opt : torch.optim.Optimizer
        The optimiser, whose gradients are zeroed first.
    minibatch : tuple of Tensor
        ``(x, y)``.
    dtype : torch.dtype or None
        Floating dtype the batch's floating tensors are cast to; None: kept.
    device : torch.device
        Where the batch is moved.
    want_grad_j : bool
        Capture the gradient with respect to the end-to-end Jacobian of ``net``.

    Returns
    -------
    loss : Tensor
        The loss of the batch (scalar), gradients accumulated in the parameters.
    grad_J : Tensor or None
        Gradient of the loss with respect to the network's Jacobian [n_L, n_0], or None.
    """
    x, y = to_device(minibatch[0], dtype, device), to_device(minibatch[1], dtype, device)
    opt.zero_grad(set_to_none=True)
    if want_grad_j and net is not None:
        with JacobianGradient(net) as cap:
            loss = loss_fn(model(x), y)
            loss.backward()
        return loss, cap.grad
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss, None


class Checkpointer:
    """A run's checkpoint file (``path`` None: none): what it saves, and resuming from it.

    Parameters
    ----------
    path : str or os.PathLike or None
        The checkpoint file; None: the run keeps no checkpoint.
    fp : dict
        Fingerprint of the run (:func:`fgln.training.checkpoints.fingerprint`); a checkpoint
        with another one is refused.
    gens : list of torch.Generator
        The generators whose states are saved and restored.
    batches : Batches or None
        The mini-batch iterator; None for full-batch data.
    cuda : bool
        Whether the CUDA random state is saved too.
    """

    def __init__(self, path: str | os.PathLike | None, fp, gens: list,
                 batches: Batches | None, cuda: bool):
        self.path = Path(path) if path is not None else None
        self.fp, self.gens, self.batches, self.cuda = fp, gens, batches, cuda
        self.resumed = False

    def resume(self, model, opt, total: int) -> tuple[int, dict, list, float | None]:
        """``(start, history rows, losses, first loss)`` from an existing checkpoint (the
        model, optimiser and random states restored), else a fresh start.

        Parameters
        ----------
        model : torch.nn.Module
            Model whose state is restored.
        opt : torch.optim.Optimizer
            Optimiser whose state is restored.
        total : int
            Number of updates of the run, checked against the checkpoint's.

        Returns
        -------
        start : int
            The step to continue from (0 for a fresh start).
        rows : dict
            History recorded so far.
        losses : list of float
            Losses recorded so far.
        loss0 : float or None
            The loss before the first step, if recorded.
        """
        if self.path is None or not self.path.is_file():
            return 0, {}, [], None
        ck = load_checkpoint(self.path, self.fp, total)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if self.batches is None:
            set_rng_state(ck["rng_now"], self.gens)
        else:
            self.batches.restore(int(ck["epoch"]), int(ck["pos"]), ck["rng_epoch"],
                                 ck["rng_now"])
        self.resumed = True
        return (int(ck["step"]), history_from_tensors(ck["history"]), ck["losses"].tolist(),
                ck["loss0"])

    def save(self, step: int, model, opt, rows: dict, losses: list,
             loss0: float | None) -> None:
        """Write the state after ``step`` updates to the checkpoint file (if the run keeps one).

        Parameters
        ----------
        step : int
            Number of updates done.
        model : torch.nn.Module
            Model whose state is saved.
        opt : torch.optim.Optimizer
            Optimiser whose state is saved.
        rows : dict
            History recorded so far.
        losses : list of float
            Losses recorded so far.
        loss0 : float or None
            The loss before the first step.
        """
        if self.path is None:
            return
        payload = {
            "format": FORMAT, "fingerprint": self.fp, "step": step,
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "history": history_to_tensors(rows),
            "losses": torch.tensor(losses, dtype=torch.float64), "loss0": loss0,
        }
        # position first: at the end of an epoch it exhausts the loader (which may draw)
        b = self.batches
        epoch, pos, rng_epoch = (0, 0, None) if b is None else b.position()
        payload.update(epoch=epoch, pos=pos, rng_epoch=rng_epoch,
                       rng_now=rng_state(self.gens, self.cuda))
        save_checkpoint(self.path, payload)
