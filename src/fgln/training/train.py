"""Gradient-descent training with spectral recording, checkpoints and resume.

Public API
----------
``train(model, data, loss_fn, *, lr, steps=None, epochs=None, optimizer="sgd", momentum=0.0,
weight_decay=0.0, record=None, record_epochs=False, recorders=None, callback=None,
checkpoint=None, checkpoint_every=None, resume=True, dtype=None, device="cpu",
max_loss_factor=1e6, progress=None, desc="train") -> TrainResult``

* ``model``: any ``torch.nn.Module`` (a :class:`~fgln.training.networks.FixedGatesNetwork`, or e.g.
  ``nn.Sequential(adapter, FixedGatesNetwork, adapter)``). It is moved to ``device``
  (default the CPU; ``"auto"``: CUDA when available) and, if ``dtype`` is given, cast to it;
  it is trained in place.
* ``data``: ``(x, y)`` tensors (full batch: every step uses all of it; give ``steps``), or an
  iterable of ``(x, y)`` mini-batches re-iterated once per epoch (a ``DataLoader``; give
  ``epochs`` and/or ``steps``). If the loader's ``dataset`` or ``sampler`` has ``set_epoch``,
  it is called with the epoch number before each epoch.
* ``loss_fn(output, y) -> scalar tensor``.
* ``optimizer``: ``"sgd"`` (with ``momentum``, ``weight_decay``), ``"adam"``, ``"adamw"``, or a
  callable ``params -> torch.optim.Optimizer``.
* A *step* is one update. Step ``s`` in the history is the state after ``s`` updates, with the
  gradient computed at that state (the one update ``s + 1`` uses). ``t = s * lr`` is the
  gradient-flow time of plain gradient descent.
* ``record``: ``None``, an int ``k`` (steps 0, k, 2k, ... and the last one) or a sequence of
  steps; ``record_epochs=True`` adds the end of every epoch. At a recorded step the history
  gets ``step``, ``t``, ``loss`` and the output of every recorder ``r(net, grad_J) -> dict``
  applied to the fixed-gates network inside ``model`` (``grad_J``: the gradient of the batch loss
  with respect to its end-to-end matrix ``J``; default recorder:
  :class:`fgln.training.recorders.SpectralRecorder`, top-15 singular values, ``g_k``, spectra of the
  partial products), plus the output of ``callback(ctx: RecordContext) -> dict | None``.
* ``checkpoint``: a file path. Every ``checkpoint_every`` steps and at the end the weights,
  optimiser state, RNG states (torch CPU/CUDA, numpy, python ``random``, the loader's
  generators and the position in the epoch) and the history are written atomically
  (:func:`fgln.base.atomic.atomic_write`). With ``resume=True`` an existing checkpoint is loaded
  and the run continues from it; on CPU it ends with exactly the weights of an uninterrupted
  run. A checkpoint from another configuration raises ``ValueError``.
* A non-finite loss, or one above ``max_loss_factor`` times the first loss, stops the run with
  :class:`DivergenceError` naming the step.
* Progress bar (with the loss, and the latest scalars returned by ``callback``, e.g. a test
  accuracy) via :mod:`fgln.base.progress` (``FGLN_PROGRESS=0`` silences it).

``TrainResult``: ``model``, ``history`` (dict of numpy arrays stacked over records), ``losses``
(one per step), ``steps``, ``epoch``, ``resumed_from`` (step or None), ``seconds``,
``record_seconds`` (time spent recording, in this call; a resumed run counts from the resume).

Also :func:`half_mse`. Checkpoint contents: :mod:`fgln.training.checkpoints`;
mini-batch iteration with exact resume: :mod:`fgln.training.batches`; the chapters' synthetic runs:
:mod:`fgln.training.synthetic_runs`.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..base.progress import progress as _progress
from ..base.validation import check_int, check_positive, resolve_device
from ._steps import Checkpointer, forward_backward, make_optimizer, plan_steps
from .batches import Batches, to_device
from .checkpoints import fingerprint, loader_generators
from .networks import find_fixed_gates_network
from .recorders import SpectralRecorder, record_steps, stack_history

Tensor = torch.Tensor

__all__ = [
    "train",
    "TrainResult",
    "RecordContext",
    "DivergenceError",
    "half_mse",
]

class DivergenceError(RuntimeError):
    """The loss became non-finite or exploded; ``.step`` is the step at which it happened.

    Parameters
    ----------
    message : str
        What happened.
    step : int
        The step at which the loss diverged.
    loss : float
        The loss at that step.
    """

    def __init__(self, message: str, step: int, loss: float):
        super().__init__(message)
        self.step = step
        self.loss = loss


@dataclass
class RecordContext:
    """What a ``callback`` sees at a recorded step.

    Parameters
    ----------
    model, net, step, epoch, t, loss, grad_J, minibatch
        The attributes below, in this order.

    Attributes
    ----------
    model : torch.nn.Module
        The model being trained.
    net : torch.nn.Module or None
        The FixedGatesNetwork inside ``model`` (None without one).
    step : int
        Updates done so far.
    epoch : int
        The current epoch.
    t : float
        Gradient-flow time ``step * lr``.
    loss : float
        The batch loss at this state.
    grad_J : Tensor or None
        Gradient of the batch loss with respect to ``net``'s ``J`` [n_L, n_0].
    minibatch : tuple of Tensor
        The batch ``(x, y)`` of this step.
    """

    model: nn.Module
    net: nn.Module | None        # the FixedGatesNetwork inside model (or None)
    step: int
    epoch: int
    t: float                      # step * lr
    loss: float
    grad_J: Tensor | None         # grad of the batch loss w.r.t. net's J (None without net)
    minibatch: tuple[Tensor, Tensor]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Parameters
    ----------
    model, history, losses, steps, epoch, resumed_from, seconds, record_seconds
        The attributes below, in this order.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (trained in place).
    history : dict of str to numpy.ndarray
        The recorded rows stacked over records (``step``, ``t``, ``loss``, recorders' and
        callback's outputs).
    losses : numpy.ndarray
        The loss of every step [steps].
    steps : int
        Updates done.
    epoch : int
        Epochs done.
    resumed_from : int or None
        The step the run resumed from, None for a fresh run.
    seconds : float
        Wall time of this call.
    record_seconds : float
        Time spent recording in this call.
    """

    model: nn.Module
    history: dict[str, np.ndarray]
    losses: np.ndarray
    steps: int
    epoch: int
    resumed_from: int | None
    seconds: float
    record_seconds: float


def half_mse(output: Tensor, target: Tensor) -> Tensor:
    """``(1/2) mean_i ||output_i - target_i||^2`` (sum over features, mean over rows).

    Parameters
    ----------
    output : Tensor
        Predictions [rows, features].
    target : Tensor
        Targets, same shape.

    Returns
    -------
    loss : Tensor
        A scalar.
    """
    return 0.5 * (output - target).pow(2).sum(-1).mean()


# --------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------


class _History:
    """The recorded rows (their keys fixed by the first row), the scalars a ``callback``
    returned last (shown in the progress bar) and the time spent recording."""

    def __init__(self, rows: dict[str, list], lr: float, recorders: list, callback, cuda: bool):
        self.rows, self.lr, self.recorders, self.callback = rows, lr, recorders, callback
        self.cuda, self.seconds, self.shown = cuda, 0.0, {}

    def has(self, step: int) -> bool:
        return bool(self.rows.get("step")) and self.rows["step"][-1] == step

    def record(self, model, net, epoch: int, step: int, loss_value: float, grad_j,
               batch) -> None:
        if self.has(step):
            return
        t0 = time.perf_counter()
        row: dict[str, Any] = {"step": step, "t": step * self.lr, "loss": loss_value}
        for r in self.recorders:
            row.update(r(net, grad_j))
        if self.callback is not None:
            extra = self.callback(RecordContext(model, net, step, epoch, step * self.lr,
                                                loss_value, grad_j, batch))
            if extra:
                row.update(extra)
                self.shown.update({k: f"{float(v):.4g}" for k, v in extra.items()
                                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
        hist = self.rows
        if hist and set(row) != set(hist):
            changed = sorted(set(row) ^ set(hist))
            raise ValueError(f"recorded keys changed at step {step}: {changed}")
        for key, val in row.items():
            if isinstance(val, Tensor):
                val = val.detach().cpu().numpy()
            hist.setdefault(key, []).append(np.asarray(val))
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0


class _Guard:
    """The divergence guard: a non-finite loss, or one above ``factor`` times the first."""

    def __init__(self, lr: float, factor: float, loss0: float | None):
        self.lr, self.factor, self.loss0 = lr, factor, loss0

    def __call__(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            raise DivergenceError(f"loss is {value} at step {step} (t = {step * self.lr:.6g}): "
                                  "training diverged", step, value)
        if self.loss0 is None:
            self.loss0 = max(value, 1e-300)
        elif value > self.factor * self.loss0:
            raise DivergenceError(
                f"loss {value:.4g} at step {step} (t = {step * self.lr:.6g}) exceeds "
                f"{self.factor:g} x the first loss {self.loss0:.4g}: training diverged",
                step, value)


def train(model: nn.Module, data, loss_fn: Callable[[Tensor, Tensor], Tensor], *,
          lr: float, steps: int | None = None, epochs: int | None = None,
          optimizer: str | Callable = "sgd", momentum: float = 0.0, weight_decay: float = 0.0,
          record: int | Sequence[int] | None = None, record_epochs: bool = False,
          recorders: Sequence[Callable] | None = None,
          callback: Callable[[RecordContext], dict | None] | None = None,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
          resume: bool = True, dtype: torch.dtype | None = None, device="cpu",
          max_loss_factor: float = 1e6, progress: bool | None = None,
          desc: str = "train") -> TrainResult:
    """Train ``model`` by (stochastic) gradient descent; see the module docstring.

    Its parts: the argument checks and the step plan, the model, recorders and optimiser,
    resuming from a checkpoint (all in :mod:`fgln.training._steps`), then the loop: forward
    and backward, the divergence guard (:class:`!_Guard`), recording (:class:`!_History`), the
    update and the checkpoints.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place, moved to ``device`` (and cast to ``dtype`` if given).
    data : tuple of Tensor or iterable
        ``(x, y)`` for full batch, or an iterable of ``(x, y)`` mini-batches per epoch.
    loss_fn : callable
        ``loss_fn(output, y) -> scalar tensor``.
    lr : float
        Learning rate (> 0).
    steps : int or None
        Updates to do (needed for full batch).
    epochs : int or None
        Epochs over a loader (alone or with ``steps``).
    optimizer : str or callable
        ``"sgd"``, ``"adam"``, ``"adamw"`` or ``params -> torch.optim.Optimizer``.
    momentum : float
        SGD momentum.
    weight_decay : float
        Weight decay of SGD / AdamW.
    record : int, sequence of int or None
        Record every ``k`` steps (and the last), at the given steps, or never.
    record_epochs : bool
        Also record at the end of every epoch.
    recorders : sequence of callable or None
        ``r(net, grad_J) -> dict`` applied at recorded steps (default: one
        :class:`fgln.training.recorders.SpectralRecorder` when ``model`` holds a network).
    callback : callable or None
        ``callback(ctx: RecordContext) -> dict | None`` at recorded steps.
    checkpoint : str, os.PathLike or None
        Checkpoint file (written atomically).
    checkpoint_every : int or None
        Steps between checkpoints (>= 1; the last step is always saved).
    resume : bool
        Continue from an existing checkpoint.
    device : str or torch.device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    dtype : torch.dtype or None
        Cast the model to it.
    max_loss_factor : float
        Divergence threshold relative to the first loss (> 1).
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).
    desc : str
        Label of the progress bar.

    Returns
    -------
    result : TrainResult
        The model, its history and losses, and timings.

    Raises
    ------
    TypeError
        If ``model`` is not a module, ``loss_fn`` not callable, or a count not an integer.
    ValueError
        If an argument is out of range, recorders are given without a network inside
        ``model``, or the checkpoint is from another configuration.
    DivergenceError
        If the loss becomes non-finite or exceeds ``max_loss_factor`` times the first.
    """
    t_begin = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable (output, y) -> scalar tensor")
    lr = check_positive("lr", lr)
    if not (max_loss_factor > 1):
        raise ValueError(f"max_loss_factor must be > 1, got {max_loss_factor}")
    device = resolve_device(device)
    cuda = device.type == "cuda"
    plan = plan_steps(data, steps, epochs)
    full_batch, total = plan.full_batch, plan.total
    every = None if checkpoint_every is None else check_int("checkpoint_every", checkpoint_every, 1)

    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    net = find_fixed_gates_network(model)
    if recorders is None:
        recorders = [SpectralRecorder()] if net is not None else []
    recorders = list(recorders)
    if recorders and net is None:
        raise ValueError("recorders need a FixedGatesNetwork inside model")
    rec_steps = set(record_steps(record, total))
    if record_epochs and not full_batch:
        rec_steps |= {e * plan.per_epoch for e in range(1, total // plan.per_epoch + 1)}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, lr, momentum, weight_decay)
    fp = fingerprint(model, optimizer, lr, momentum, weight_decay, dtype, full_batch)

    gens = [] if full_batch else loader_generators(data)
    batches = None if full_batch else Batches(data, gens, cuda)
    ckpt = Checkpointer(checkpoint, fp, gens, batches, cuda)
    start, rows, losses, loss0 = (ckpt.resume(model, opt, total) if resume
                                  else (0, {}, [], None))
    resumed_from = start if ckpt.resumed else None
    history = _History(rows, lr, recorders, callback, cuda)
    guard = _Guard(lr, max_loss_factor, loss0)

    def save(step: int) -> None:
        ckpt.save(step, model, opt, history.rows, losses, guard.loss0)

    def record(step: int, value: float, grad_j, batch) -> None:
        epoch = 0 if batches is None else batches.epoch
        history.record(model, net, epoch, step, value, grad_j, batch)

    if full_batch:
        xb = to_device(data[0], dtype, device)
        yb = to_device(data[1], dtype, device)
    last_batch = None
    model.train()
    bar = _progress(range(start, total), total=total - start, desc=desc, enable=progress)
    post_every = max(1, (total - start) // 200)
    for s in bar:
        batch = (xb, yb) if full_batch else batches.next()
        want = s in rec_steps
        loss, grad_j = forward_backward(model, net, loss_fn, opt, batch, dtype, device,
                                        want and net is not None)
        value = float(loss.detach())
        guard(s, value)
        losses.append(value)
        if want:
            record(s, value, grad_j, batch)
        opt.step()
        last_batch = batch
        if hasattr(bar, "set_postfix") and (s - start) % post_every == 0:
            bar.set_postfix(loss=f"{value:.4g}", **history.shown, refresh=False)
        if every is not None and (s + 1) % every == 0 and s + 1 < total:
            save(s + 1)
    if total in rec_steps and not history.has(total):
        batch = (xb, yb) if full_batch else (last_batch if last_batch is not None
                                             else batches.next())
        loss, grad_j = forward_backward(model, net, loss_fn, opt, batch, dtype, device,
                                        net is not None)
        value = float(loss.detach())
        guard(total, value)
        record(total, value, grad_j, batch)
        opt.zero_grad(set_to_none=True)
    save(total)
    return TrainResult(model=model, history=stack_history(history.rows),
                       losses=np.asarray(losses, dtype=float), steps=total,
                       epoch=0 if batches is None else batches.epoch,
                       resumed_from=resumed_from, seconds=time.perf_counter() - t_begin,
                       record_seconds=history.seconds)
