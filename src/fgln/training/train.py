"""Gradient-descent training with spectral recording, checkpoints and resume.

Public API
----------
``train(model, data, loss_fn, *, lr, steps=None, epochs=None, optimizer="sgd", momentum=0.0,
weight_decay=0.0, record=None, record_epochs=False, recorders=None, callback=None,
checkpoint=None, checkpoint_every=None, resume=True, device="auto", dtype=None,
max_loss_factor=1e6, progress=None, desc="train") -> TrainResult``

* ``model``: any ``torch.nn.Module`` (a :class:`~fgln.training.networks.FixedGatesNetwork`, or e.g.
  ``nn.Sequential(adapter, FixedGatesNetwork, adapter)``). It is moved to ``device``
  (``"auto"``: CUDA when available) and, if ``dtype`` is given, cast to it; it is trained in place.
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
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..base.progress import progress as _progress
from ..base.validation import check_int, check_positive, resolve_device
from .batches import Batches, is_full_batch, to_device
from .checkpoints import (
    FORMAT,
    fingerprint,
    history_from_tensors,
    history_to_tensors,
    load_checkpoint,
    loader_generators,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .networks import JacobianGradient, find_fixed_gates_network
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
    """The loss became non-finite or exploded; ``.step`` is the step at which it happened."""

    def __init__(self, message: str, step: int, loss: float):
        super().__init__(message)
        self.step = step
        self.loss = loss


@dataclass
class RecordContext:
    """What a ``callback`` sees at a recorded step."""

    model: nn.Module
    net: nn.Module | None        # the FixedGatesNetwork inside model (or None)
    step: int
    epoch: int
    t: float                      # step * lr
    loss: float
    grad_J: Tensor | None         # grad of the batch loss w.r.t. net's J (None without net)
    batch: tuple[Tensor, Tensor]


@dataclass
class TrainResult:
    model: nn.Module
    history: dict[str, np.ndarray]
    losses: np.ndarray
    steps: int
    epoch: int
    resumed_from: int | None
    seconds: float
    record_seconds: float


def half_mse(output: Tensor, target: Tensor) -> Tensor:
    """``(1/2) mean_i ||output_i - target_i||^2`` (sum over features, mean over rows)."""
    return 0.5 * (output - target).pow(2).sum(-1).mean()


# --------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------


def _make_optimizer(optimizer, params, lr, momentum, weight_decay):
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


def train(model: nn.Module, data, loss_fn: Callable[[Tensor, Tensor], Tensor], *,
          lr: float, steps: int | None = None, epochs: int | None = None,
          optimizer: str | Callable = "sgd", momentum: float = 0.0, weight_decay: float = 0.0,
          record: int | Sequence[int] | None = None, record_epochs: bool = False,
          recorders: Sequence[Callable] | None = None,
          callback: Callable[[RecordContext], dict | None] | None = None,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
          resume: bool = True, device="auto", dtype: torch.dtype | None = None,
          max_loss_factor: float = 1e6, progress: bool | None = None,
          desc: str = "train") -> TrainResult:
    """Train ``model`` by (stochastic) gradient descent; see the module docstring."""
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
    full_batch = is_full_batch(data)
    if full_batch:
        if steps is None:
            raise ValueError("steps is required with full-batch data (x, y)")
        if epochs is not None:
            raise ValueError("epochs applies to mini-batch data; give steps for (x, y)")
        total = check_int("steps", steps, 0)
        if data[0].shape[0] != data[1].shape[0]:
            raise ValueError(f"data: x and y have {data[0].shape[0]} and {data[1].shape[0]} rows")
    else:
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
        total = min(bounds)
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
        rec_steps |= {e * per_epoch for e in range(1, total // per_epoch + 1)}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, lr, momentum, weight_decay)
    fp = fingerprint(model, optimizer, lr, momentum, weight_decay, dtype, full_batch)

    gens = [] if full_batch else loader_generators(data)
    batches = None if full_batch else Batches(data, gens, cuda)
    hist: dict[str, list] = {}
    losses: list[float] = []
    start, resumed_from, loss0 = 0, None, None
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and resume and ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path, fp, total)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start = resumed_from = int(ck["step"])
        hist = history_from_tensors(ck["history"])
        losses = ck["losses"].tolist()
        loss0 = ck["loss0"]
        if full_batch:
            set_rng_state(ck["rng_now"], gens)
        else:
            batches.restore(int(ck["epoch"]), int(ck["pos"]), ck["rng_epoch"], ck["rng_now"])

    def save(step: int) -> None:
        if ckpt_path is None:
            return
        payload = {
            "format": FORMAT, "fingerprint": fp, "step": step,
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "history": history_to_tensors(hist),
            "losses": torch.tensor(losses, dtype=torch.float64), "loss0": loss0,
        }
        # position first: at the end of an epoch it exhausts the loader (which may draw)
        epoch, pos, rng_epoch = (0, 0, None) if batches is None else batches.position()
        payload.update(epoch=epoch, pos=pos, rng_epoch=rng_epoch, rng_now=rng_state(gens, cuda))
        save_checkpoint(ckpt_path, payload)

    if full_batch:
        xb = to_device(data[0], device, dtype)
        yb = to_device(data[1], device, dtype)
    record_seconds = 0.0
    shown: dict[str, str] = {}  # scalar values returned by callback, shown in the progress bar
    last_batch = None

    def forward_backward(batch, want_grad_j: bool):
        x, y = to_device(batch[0], device, dtype), to_device(batch[1], device, dtype)
        opt.zero_grad(set_to_none=True)
        if want_grad_j and net is not None:
            with JacobianGradient(net) as cap:
                loss = loss_fn(model(x), y)
                loss.backward()
            return loss, cap.grad
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss, None

    def do_record(step: int, loss_value: float, grad_j, batch) -> None:
        nonlocal record_seconds
        if hist.get("step") and hist["step"][-1] == step:
            return
        t0 = time.perf_counter()
        row: dict[str, Any] = {"step": step, "t": step * lr, "loss": loss_value}
        for r in recorders:
            row.update(r(net, grad_j))
        if callback is not None:
            epoch = 0 if batches is None else batches.epoch
            extra = callback(RecordContext(model, net, step, epoch, step * lr, loss_value,
                                           grad_j, batch))
            if extra:
                row.update(extra)
                shown.update({k: f"{float(v):.4g}" for k, v in extra.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if hist and set(row) != set(hist):
            changed = sorted(set(row) ^ set(hist))
            raise ValueError(f"recorded keys changed at step {step}: {changed}")
        for key, val in row.items():
            if isinstance(val, Tensor):
                val = val.detach().cpu().numpy()
            hist.setdefault(key, []).append(np.asarray(val))
        if cuda:
            torch.cuda.synchronize()
        record_seconds += time.perf_counter() - t0

    def guard(step: int, value: float) -> None:
        nonlocal loss0
        if not math.isfinite(value):
            raise DivergenceError(f"loss is {value} at step {step} (t = {step * lr:.6g}): "
                                  "training diverged", step, value)
        if loss0 is None:
            loss0 = max(value, 1e-300)
        elif value > max_loss_factor * loss0:
            raise DivergenceError(
                f"loss {value:.4g} at step {step} (t = {step * lr:.6g}) exceeds "
                f"{max_loss_factor:g} x the first loss {loss0:.4g}: training diverged", step, value)

    model.train()
    bar = _progress(range(start, total), total=total - start, desc=desc, enable=progress)
    post_every = max(1, (total - start) // 200)
    for s in bar:
        batch = (xb, yb) if full_batch else batches.next()
        want = s in rec_steps
        loss, grad_j = forward_backward(batch, want and net is not None)
        value = float(loss.detach())
        guard(s, value)
        losses.append(value)
        if want:
            do_record(s, value, grad_j, batch)
        opt.step()
        last_batch = batch
        if hasattr(bar, "set_postfix") and (s - start) % post_every == 0:
            bar.set_postfix(loss=f"{value:.4g}", **shown, refresh=False)
        if every is not None and (s + 1) % every == 0 and s + 1 < total:
            save(s + 1)
    if total in rec_steps and not (hist.get("step") and hist["step"][-1] == total):
        batch = (xb, yb) if full_batch else (last_batch if last_batch is not None
                                             else batches.next())
        loss, grad_j = forward_backward(batch, net is not None)
        value = float(loss.detach())
        guard(total, value)
        do_record(total, value, grad_j, batch)
        opt.zero_grad(set_to_none=True)
    save(total)
    return TrainResult(model=model, history=stack_history(hist),
                       losses=np.asarray(losses, dtype=float), steps=total,
                       epoch=0 if batches is None else batches.epoch,
                       resumed_from=resumed_from, seconds=time.perf_counter() - t_begin,
                       record_seconds=record_seconds)
