"""Gradient-descent training with spectral recording, checkpoints and resume.

Public API
----------
``train(model, data, loss_fn, *, lr, steps=None, epochs=None, optimizer="sgd", momentum=0.0,
weight_decay=0.0, record=None, record_epochs=False, recorders=None, callback=None,
checkpoint=None, checkpoint_every=None, resume=True, device="auto", dtype=None,
max_loss_factor=1e6, progress=None, desc="train") -> TrainResult``

* ``model``: any ``torch.nn.Module`` (a :class:`~fgln.networks.FixedGatesNetwork`, or e.g.
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
  :class:`fgln.dynamics.SpectralRecorder`, top-15 singular values, ``g_k``, spectra of the
  partial products), plus the output of ``callback(ctx: RecordContext) -> dict | None``.
* ``checkpoint``: a file path. Every ``checkpoint_every`` steps and at the end the weights,
  optimiser state, RNG states (torch CPU/CUDA, numpy, python ``random``, the loader's
  generators and the position in the epoch) and the history are written atomically
  (:func:`fgln.atomic.atomic_write`). With ``resume=True`` an existing checkpoint is loaded
  and the run continues from it; on CPU it ends with exactly the weights of an uninterrupted
  run. A checkpoint from another configuration raises ``ValueError``.
* A non-finite loss, or one above ``max_loss_factor`` times the first loss, stops the run with
  :class:`DivergenceError` naming the step.
* Progress bar (with the loss, and the latest scalars returned by ``callback``, e.g. a test
  accuracy) via :mod:`fgln.progress` (``FGLN_PROGRESS=0`` silences it).

``TrainResult``: ``model``, ``history`` (dict of numpy arrays stacked over records), ``losses``
(one per step), ``steps``, ``epoch``, ``resumed_from`` (step or None), ``seconds``,
``record_seconds`` (time spent recording, in this call; a resumed run counts from the resume).

Also: :func:`synthetic_task` (the rank-10 regression of Figure 1 and Appendix G.1) and
:func:`half_mse`.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .networks import JacobianGradient, find_fixed_gates_network, resolve_device
from .progress import progress as _progress
from .sampling import make_generator
from .validation import check_int

Tensor = torch.Tensor

__all__ = [
    "train",
    "TrainResult",
    "RecordContext",
    "DivergenceError",
    "synthetic_task",
    "half_mse",
    "compress_regression",
    "record_steps",
    "synthetic_run",
    "balanced_run",
]

_FORMAT = 1


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
    extra: dict[str, Any] = field(default_factory=dict)


def half_mse(output: Tensor, target: Tensor) -> Tensor:
    """``(1/2) mean_i ||output_i - target_i||^2`` (sum over features, mean over rows)."""
    return 0.5 * (output - target).pow(2).sum(-1).mean()


def synthetic_task(n: int = 64, rank: int = 10, samples: int = 1000, *, seed: int = 0,
                   dtype: torch.dtype = torch.float64, device="cpu"
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Figure 1 / Appendix G.1 task: ``(X [samples, n], Y [samples, n], T [n, n])``.

    Inputs ``x ~ N(0, I_n)``; targets ``y = T x`` with the fixed rank-``rank`` map
    ``T = G_1 G_2``, ``G_1`` [n, rank] and ``G_2`` [rank, n] with i.i.d. N(0, 1/n) entries
    (singular values of order 1). Drawn from one generator seeded by ``seed``: G_1, G_2, X.
    """
    n = check_int("n", n, 1)
    rank = check_int("rank", rank, 1, n)
    samples = check_int("samples", samples, 1)
    device = resolve_device(device)
    gen = make_generator(seed, device)
    g1 = torch.randn(n, rank, generator=gen, dtype=dtype, device=device) / math.sqrt(n)
    g2 = torch.randn(rank, n, generator=gen, dtype=dtype, device=device) / math.sqrt(n)
    T = g1 @ g2
    X = torch.randn(samples, n, generator=gen, dtype=dtype, device=device)
    return X, X @ T.T, T


def compress_regression(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float, float]:
    """Fewer rows, the same least-squares loss: ``(x_c, y_c, weight, const)`` with
    ``half_mse(x @ J.T, y) = weight * half_mse(x_c @ J.T, y_c) + const`` for every ``J``.

    ``x = Q R`` (reduced QR, ``x`` [N, n] with N >= n): ``x_c = R`` [n, n], ``y_c = Q^T y``,
    ``weight = n / N`` and ``const = ||(I - Q Q^T) y||_F^2 / (2N)`` (0 when ``y`` is a linear
    function of ``x``, as in :func:`synthetic_task`). Gradient descent on the compressed
    problem follows the same trajectory, up to rounding, at a fraction of the cost.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be [N, n] and [N, m] with the same N, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    N, n = x.shape
    if N < n:
        raise ValueError(f"x must have at least as many rows as columns, got {tuple(x.shape)}")
    Q, R = torch.linalg.qr(x)
    yc = Q.T @ y
    const = 0.5 * float((y - Q @ yc).pow(2).sum()) / N
    return R, yc, n / N, const


def record_steps(every: int | Sequence[int] | None, total: int) -> list[int]:
    """The sorted recorded steps in ``[0, total]``: every ``k`` (plus ``total``), or a list."""
    if every is None:
        return []
    if isinstance(every, (int, np.integer)) and not isinstance(every, bool):
        k = check_int("record", every, 1)
        return sorted(set(range(0, total + 1, k)) | {total})
    try:
        steps = sorted({check_int("record[...]", s, 0) for s in every})
    except TypeError:
        raise ValueError(f"record must be None, an int or a sequence of ints, got {every!r}") \
            from None
    return [s for s in steps if s <= total]


# --------------------------------------------------------------------------------------
# RNG states (checkpointable with torch.load(weights_only=True))
# --------------------------------------------------------------------------------------


def _loader_generators(data) -> list[torch.Generator]:
    gens, seen = [], set()
    for obj in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None),
                getattr(getattr(data, "batch_sampler", None), "sampler", None)):
        g = getattr(obj, "generator", None) if obj is not None else None
        if isinstance(g, torch.Generator) and id(g) not in seen:
            seen.add(id(g))
            gens.append(g)
    return gens


def _rng_state(gens: Sequence[torch.Generator], cuda: bool) -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        "python": random.getstate(),
        "generators": [g.get_state() for g in gens],
    }
    if cuda:
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, gens: Sequence[torch.Generator]) -> None:
    torch.set_rng_state(st["torch"])
    name, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = st["python"]
    random.setstate((version, tuple(internal), gauss))
    if len(st["generators"]) != len(gens):
        raise ValueError("checkpoint: the data loader has a different number of generators")
    for g, s in zip(gens, st["generators"]):
        g.set_state(s)
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# --------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------


def _is_full_batch(data) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and isinstance(data[0], Tensor) and isinstance(data[1], Tensor))


def _to(x: Tensor, device, dtype) -> Tensor:
    if dtype is not None and x.is_floating_point():
        return x.to(device=device, dtype=dtype, non_blocking=True)
    return x.to(device=device, non_blocking=True)


class _Batches:
    """Mini-batches epoch after epoch, with the RNG bookkeeping needed for exact resume."""

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
        self.epoch, self.pos, self.epoch_rng = epoch, pos, epoch_rng
        if pos == 0 or epoch_rng is None:
            _set_rng_state(now_rng, self.gens)
            return
        _set_rng_state(epoch_rng, self.gens)
        self._start_epoch(fresh_snapshot=False)
        for _ in range(pos):
            next(self._it)
        _set_rng_state(now_rng, self.gens)

    def _start_epoch(self, fresh_snapshot: bool = True) -> None:
        for obj in (getattr(self.data, "dataset", None), getattr(self.data, "sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(self.epoch)
        if fresh_snapshot:
            self.epoch_rng = _rng_state(self.gens, self.cuda)
        self._it = iter(self.data)

    def next(self):
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
        end of an epoch is stored as the start of the next one (nothing to skip on resume)."""
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


def _fingerprint(model, optimizer, lr, momentum, weight_decay, dtype, full_batch) -> dict:
    opt_name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__",
                                                                    type(optimizer).__name__)
    return {
        "params": [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()],
        "optimizer": str(opt_name), "lr": float(lr), "momentum": float(momentum),
        "weight_decay": float(weight_decay), "full_batch": bool(full_batch),
    }


def _stack_history(hist: dict[str, list]) -> dict[str, np.ndarray]:
    out = {}
    for key, vals in hist.items():
        try:
            out[key] = np.stack([np.asarray(v) for v in vals])
        except ValueError:  # ragged: keep an object-free list of arrays per record
            raise ValueError(f"recorded {key!r} changes shape between records") from None
    return out


def _save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(payload, fh), "wb")


def _history_to_tensors(hist):
    return {k: [torch.as_tensor(np.asarray(v)) for v in vals] for k, vals in hist.items()}


def _history_from_tensors(hist):
    return {k: [v.numpy() for v in vals] for k, vals in hist.items()}


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
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable (output, y) -> scalar tensor")
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"lr must be a positive number, got {lr!r}") from None
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    if not (max_loss_factor > 1):
        raise ValueError(f"max_loss_factor must be > 1, got {max_loss_factor}")
    device = resolve_device(device)
    cuda = device.type == "cuda"
    full_batch = _is_full_batch(data)
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
            raise ValueError("data must be (x, y) tensors or an iterable of (x, y) batches")
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
        from .dynamics import SpectralRecorder
        recorders = [SpectralRecorder()] if net is not None else []
    recorders = list(recorders)
    if recorders and net is None:
        raise ValueError("recorders need a FixedGatesNetwork inside model")
    rec_steps = set(record_steps(record, total))
    if record_epochs and not full_batch:
        rec_steps |= {e * per_epoch for e in range(1, total // per_epoch + 1)}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, lr, momentum, weight_decay)
    fp = _fingerprint(model, optimizer, lr, momentum, weight_decay, dtype, full_batch)

    gens = [] if full_batch else _loader_generators(data)
    batches = None if full_batch else _Batches(data, gens, cuda)
    hist: dict[str, list] = {}
    losses: list[float] = []
    start, resumed_from, loss0 = 0, None, None
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck.get("format") != _FORMAT:
            raise ValueError(f"checkpoint {ckpt_path}: unknown format {ck.get('format')!r}")
        for key, val in fp.items():
            if ck["fingerprint"].get(key) != val:
                raise ValueError(f"checkpoint {ckpt_path} was written by another configuration: "
                                 f"{key} {ck['fingerprint'].get(key)!r} != {val!r}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start = resumed_from = int(ck["step"])
        if start > total:
            raise ValueError(f"checkpoint {ckpt_path} is at step {start}, beyond steps={total}")
        hist = _history_from_tensors(ck["history"])
        losses = ck["losses"].tolist()
        loss0 = ck["loss0"]
        if full_batch:
            _set_rng_state(ck["rng_now"], gens)
        else:
            batches.restore(int(ck["epoch"]), int(ck["pos"]), ck["rng_epoch"], ck["rng_now"])

    def save(step: int) -> None:
        if ckpt_path is None:
            return
        payload = {
            "format": _FORMAT, "fingerprint": fp, "step": step,
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "history": _history_to_tensors(hist),
            "losses": torch.tensor(losses, dtype=torch.float64), "loss0": loss0,
        }
        # position first: at the end of an epoch it exhausts the loader (which may draw)
        epoch, pos, rng_epoch = (0, 0, None) if batches is None else batches.position()
        payload.update(epoch=epoch, pos=pos, rng_epoch=rng_epoch, rng_now=_rng_state(gens, cuda))
        _save(ckpt_path, payload)

    if full_batch:
        xb = _to(data[0], device, dtype)
        yb = _to(data[1], device, dtype)
    record_seconds = 0.0
    shown: dict[str, str] = {}  # scalar values returned by callback, shown in the progress bar
    last_batch = None

    def forward_backward(batch, want_grad_j: bool):
        x, y = _to(batch[0], device, dtype), _to(batch[1], device, dtype)
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
    return TrainResult(model=model, history=_stack_history(hist),
                       losses=np.asarray(losses, dtype=float), steps=total,
                       epoch=0 if batches is None else batches.epoch,
                       resumed_from=resumed_from, seconds=time.perf_counter() - t_begin,
                       record_seconds=record_seconds)


# --------------------------------------------------------------------------------------
# the runs of Chapters 1, 4 and 7
# --------------------------------------------------------------------------------------


def _task_seed(seed: int) -> int:
    """The data of run ``seed`` come from another stream than its weights (seed + 10**6)."""
    return 1_000_000 + int(seed)


def _grid(t_max: float, dt: float, lr: float) -> tuple[int, int]:
    steps = int(round(t_max / lr))
    every = int(round(dt / lr))
    if every < 1 or steps < every or abs(steps * lr - t_max) > 1e-9 * max(1.0, t_max) \
            or abs(every * lr - dt) > 1e-9 * max(1.0, dt):
        raise ValueError(f"t_max={t_max} and record_dt={dt} must be multiples of lr={lr}")
    return steps, every


def synthetic_run(seed: int = 0, *, n: int = 64, L: int = 10, p: float = 0.5, rank: int = 10,
                  samples: int = 1000, lr: float = 0.02, t_max: float = 60.0,
                  record_dt: float = 0.5, k: int = 15, diagnostics: bool = False,
                  progress: bool | None = None) -> dict[str, np.ndarray]:
    """Figure 1 / Appendix G.1: a square FGLN (widths ``[n] * (L + 1)``, p-gates,
    ``sigma = 1/sqrt(n)``, drawn by ``FixedGatesNetwork.random(seed=seed)``) trained by full-batch
    gradient descent at step ``lr`` on :func:`synthetic_task` (``seed + 10**6``) with
    :func:`half_mse`, up to time ``t_max`` (in units of ``t = step * lr``), recorded every
    ``record_dt``. The 1000-sample loss is evaluated through :func:`compress_regression` (the
    same loss, n rows instead of ``samples``).

    Returns the stacked history (``step``, ``t``, ``loss``, ``s`` [R, n], ``g`` [R, k] and, with
    ``diagnostics``, every field of :class:`fgln.dynamics.DynamicsRecorder`, with subspaces of
    dimension ``rank``), ``losses`` (every
    step), ``T_sv`` (singular values of the target map), ``lr``, ``seconds`` and
    ``record_seconds``.
    """
    from .dynamics import DynamicsRecorder, SpectralRecorder
    from .networks import FixedGatesNetwork
    from .threads import torch_threads

    steps, every = _grid(t_max, record_dt, lr)
    with torch_threads(1):
        X, Y, T = synthetic_task(n, rank, samples, seed=_task_seed(seed))
        Xc, Yc, weight, _ = compress_regression(X, Y)
        net = FixedGatesNetwork.random([n] * (L + 1), p, seed=seed)
        rec = DynamicsRecorder(k, r=rank) if diagnostics else SpectralRecorder(k, partial_k=0)
        res = train(net, (Xc, Yc), lambda out, y: weight * half_mse(out, y), lr=lr,
                    steps=steps, record=every, recorders=[rec], device="cpu",
                    progress=progress, desc=f"seed {seed}")
    out = dict(res.history)
    out.update(losses=res.losses, T_sv=torch.linalg.svdvals(T).numpy(), lr=float(lr),
               seconds=float(res.seconds), record_seconds=float(res.record_seconds))
    return out


def balanced_run(seed: int = 0, *, n: int = 16, L: int = 6, p: float = 0.5, rank: int = 3,
                 samples: int = 200, lr: float = 0.01, t_max: float = 4.0,
                 grid_dt: float = 0.5, scale: float = 0.5, balanced: bool = True,
                 k: int = 3, progress: bool | None = None) -> dict[str, np.ndarray]:
    """Proposition 4.5 along gradient descent: a balanced masked network
    (:func:`fgln.networks.balanced_masked_network`, gates Bernoulli(p) from ``seed``,
    ``scale``), or with ``balanced=False`` a random FGLN (``FixedGatesNetwork.random``), trained
    on :func:`synthetic_task` (``n``, ``rank``, ``samples``) at step ``lr`` up to ``t_max``.

    At every grid time ``t_i = i * grid_dt`` and one step later it records ``s`` (top ``k``),
    ``pred`` (Proposition 4.5's rate), ``flow`` (the exact gradient-flow rate, Lemmas E.1-E.2)
    and ``balance`` (the largest relative balance residual). Returns ``t`` [G],
    ``measured`` [G, k] = ``(s(step + 1) - s(step)) / lr``, ``pred``, ``flow`` [G, k],
    ``balance`` [G] and ``s`` [G, k].
    """
    from .dynamics import balanced_singular_value_rates, flow_singular_value_rates
    from .networks import FixedGatesNetwork, balance_residuals, balanced_masked_network
    from .threads import torch_threads

    steps, every = _grid(t_max, grid_dt, lr)
    grid = list(range(0, steps + 1, every))
    rec = sorted(set(grid) | {g + 1 for g in grid})
    with torch_threads(1):
        X, Y, _ = synthetic_task(n, rank, samples, seed=_task_seed(seed))
        gen = make_generator(seed)
        gates = [(torch.rand(n, generator=gen, dtype=torch.float64) < p).double()
                 for _ in range(L - 1)]
        if balanced:
            net = balanced_masked_network([n] * (L + 1), gates, scale=scale, seed=gen)
        else:
            net = FixedGatesNetwork.random([n] * (L + 1), p, seed=gen)

        def cb(ctx: RecordContext) -> dict:
            J = ctx.net.jacobian().detach()
            return {"s": torch.linalg.svdvals(J)[:k],
                    "pred": balanced_singular_value_rates(J, ctx.grad_J, L, k),
                    "flow": flow_singular_value_rates(ctx.net, ctx.grad_J, k),
                    "balance": balance_residuals(ctx.net).max()}

        res = train(net, (X, Y), half_mse, lr=lr, steps=max(rec), record=rec, callback=cb,
                    recorders=[], device="cpu", progress=progress, desc=f"lr {lr:g}")
    h = res.history
    pos = {int(s): i for i, s in enumerate(h["step"])}
    i0 = [pos[g] for g in grid]
    i1 = [pos[g + 1] for g in grid]
    return {"t": np.asarray(grid, dtype=float) * lr, "s": h["s"][i0],
            "measured": (h["s"][i1] - h["s"][i0]) / lr, "pred": h["pred"][i0],
            "flow": h["flow"][i0], "balance": h["balance"][i0], "lr": float(lr)}
