"""MNIST for the experiment of Section 8: the full data set where available, else bundled digits.

:func:`load_mnist` returns an :class:`Mnist` with ``.train`` and ``.test`` datasets of
``(image [1, 28, 28] float32, label int)`` and ``.source``:

* ``"full"``: the 60,000 / 10,000 digits of MNIST, read from ``root/MNIST/raw`` (the layout
  of ``torchvision.datasets.MNIST``) or downloaded there by torchvision when ``download=True``
  and a mirror answers within ``timeout`` seconds;
* ``"bundled"``: otherwise, 10,000 real MNIST digits shipped inside the package
  (``fgln/mnist_data``, 8,000 train / 2,000 test, checked against their SHA-256), with a
  :class:`BundledMnistWarning`. A machine without network falls back at once, never fails.

Every IDX file (raw or ``.gz``) goes through :func:`fgln.idx_format.read_idx`, which checks the
header and the length: a truncated or corrupt file raises ``ValueError`` naming the file.

With ``augment=True`` each training image goes through torchvision's
``AutoAugment(AutoAugmentPolicy.CIFAR10)`` (as in Section 8), with a draw that depends only on
``(seed, epoch, index)``: the augmented data are the same for any number of ``DataLoader``
workers and after a resume, given :meth:`MnistDataset.set_epoch`. A batch is augmented in one
vectorised call (:class:`fgln.augment.BatchedAutoAugment`, equal to torchvision's transform
image by image), which costs a fraction of the image-by-image transform.
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch.utils.data import Dataset

from .augment import BatchedAutoAugment
from .cache import local_dir
from .idx_format import check_split, decompress, read_idx
from .validation import check_int

__all__ = [
    "BUNDLED_SHA256",
    "BUNDLED_SIZES",
    "FULL_SIZES",
    "MNIST_MEAN",
    "MNIST_STD",
    "BatchedAutoAugment",
    "BundledMnistWarning",
    "Mnist",
    "MnistDataset",
    "default_data_dir",
    "load_mnist",
]

# Pixel mean and standard deviation of the MNIST training set (grey levels scaled to [0, 1]).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
FULL_SIZES = (60_000, 10_000)
BUNDLED_SIZES = (8_000, 2_000)
_FILES = {  # split -> (images, labels), file names of the IDX format
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of the uncompressed bundled IDX files (see fgln/mnist_data/README.md).
BUNDLED_SHA256 = {
    "train-images-idx3-ubyte": "e63f2f57fc22447cd6e38fd8454bdd727918cdc7712e08321f29d7aa72f3b3ba",
    "train-labels-idx1-ubyte": "53a57a7e2134bea4f0906df81cdf890b1e5e5c319fc88274726dbeea8eb328c9",
    "t10k-images-idx3-ubyte": "83409ed8201e7ab11ae718e2513b083e175d306e2b29e86a599b4627fcd045d2",
    "t10k-labels-idx1-ubyte": "054c0e9ea06f1f8bd83f0270ebe024f241e0c41a5cb94aa6d53f0845f9349800",
}


class BundledMnistWarning(UserWarning):
    """The full MNIST was not available: the bundled 10,000 digits are used instead."""


# --------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------


class MnistDataset(Dataset):
    """MNIST digits as ``(image [1, 28, 28] float32, label int)``.

    ``images`` uint8 [N, 28, 28], ``labels`` [N] in 0..9. Each item is, in order: the uint8
    image [1, 28, 28]; with ``augment`` (a :class:`BatchedAutoAugment`), its augmentation drawn
    from ``(seed, epoch, index)``, so reproducible whatever the ``DataLoader`` worker, batch or
    order that fetches it; scaling to [0, 1]; with ``normalize``,
    ``(x - MNIST_MEAN) / MNIST_STD``. ``__getitems__`` (used by ``DataLoader`` for a whole
    batch) augments the batch in one call and gives the same items as ``__getitem__``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *,
                 augment: BatchedAutoAugment | None = None, normalize: bool = True,
                 seed: int = 0) -> None:
        if images.dtype != torch.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
            raise ValueError(f"images must be uint8 [N, 28, 28], got {images.dtype} "
                             f"{list(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be [N] with N = {images.shape[0]}, got "
                             f"{list(labels.shape)}")
        if augment is not None and not isinstance(augment, BatchedAutoAugment):
            raise ValueError(f"augment must be a BatchedAutoAugment or None, got {augment!r}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.augment = augment
        self.normalize = bool(normalize)
        self.seed = check_int("seed", seed, 0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before iterating over an epoch)."""
        self.epoch = check_int("epoch", epoch, 0)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _indices(self, indices) -> list[int]:
        n = len(self)
        out = []
        for i in indices:
            i = int(i)
            if not -n <= i < n:
                raise IndexError(f"index {i} out of range for {n} images")
            out.append(i % n)
        return out

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, 1, 28, 28] float32 and labels [B] int64 of ``indices``, augmented
        (training set) and normalised as the items are."""
        idx = self._indices(indices)
        imgs = self.images[idx][:, None]  # uint8 [B, 1, 28, 28]
        if self.augment is not None and idx:
            imgs = self.augment(imgs, self.augment.draws(self.seed, self.epoch, idx))
        x = imgs.to(torch.float32).div_(255.0)
        if self.normalize:
            x = x.sub_(MNIST_MEAN).div_(MNIST_STD)
        return x, self.labels[idx]

    def __getitems__(self, indices) -> list[tuple[torch.Tensor, int]]:
        x, y = self.batch(indices)
        return list(zip(x.unbind(0), y.tolist()))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([index])[0]

    def subset(self, count: int) -> MnistDataset:
        """The first ``count`` items, same augmentation and normalisation (for quick runs)."""
        count = check_int("count", count, 1, len(self))
        out = MnistDataset(self.images[:count], self.labels[:count], augment=self.augment,
                           normalize=self.normalize, seed=self.seed)
        out.epoch = self.epoch
        return out


@dataclass(frozen=True)
class Mnist:
    """The two splits and where they came from (``source``: ``"full"`` or ``"bundled"``)."""

    train: MnistDataset
    test: MnistDataset
    source: str
    root: Path | None  # folder holding MNIST/raw for "full"; None for "bundled"


# --------------------------------------------------------------------------------------
# where the digits come from
# --------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$FGLN_DATA_DIR`` if set, else ``<repo>/.cache/data`` in a checkout, else
    ``~/.cache/fgln/data``: the ``root`` used when :func:`load_mnist` gets none."""
    return local_dir("FGLN_DATA_DIR", ".cache/data", "fgln/data")


def _raw_file(raw_dir: Path, name: str) -> Path | None:
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _have_full(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all(_raw_file(raw, n) is not None for pair in _FILES.values() for n in pair)


def _read_root(root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    raw = root / "MNIST" / "raw"
    out = {}
    for split, names in _FILES.items():
        paths = [_raw_file(raw, n) for n in names]
        images, labels = (read_idx(p) for p in paths)
        check_split(images, labels, tuple(str(p) for p in paths))
        out[split] = (images, labels)
    return out


def _read_bundled() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    folder = resources.files("fgln") / "mnist_data"
    out = {}
    for split, names in _FILES.items():
        tensors = []
        for n in names:
            res = folder / f"{n}.gz"
            label = f"bundled {n}.gz (fgln/mnist_data)"
            try:
                raw = res.read_bytes()
            except (FileNotFoundError, OSError):
                raise ValueError(f"{label}: missing from the installed package "
                                 "(package data not installed?)") from None
            data = decompress(raw, label)
            if hashlib.sha256(data).hexdigest() != BUNDLED_SHA256[n]:
                raise ValueError(f"{label}: corrupt (SHA-256 differs from the recorded one)")
            tensors.append(read_idx(data, name=label))
        check_split(*tensors, names)
        out[split] = tuple(tensors)
    return out


def _connect(host: str, port: int, timeout: float) -> bool:
    """True iff a TCP connection to ``host:port`` opens within ``timeout`` seconds, name
    resolution included (run in a daemon thread: a hanging resolver cannot block us)."""
    ok = []

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _mirrors_reachable(timeout: float) -> bool:
    from torchvision.datasets import MNIST

    for url in MNIST.mirrors:
        u = urlparse(url)
        if u.hostname and _connect(u.hostname, u.port or (443 if u.scheme == "https" else 80),
                                   timeout):
            return True
    return False


def _download(root: Path, timeout: float) -> str | None:
    """Download MNIST into ``root/MNIST/raw`` with torchvision; None on success, else why not."""
    if not _mirrors_reachable(timeout):
        return f"no MNIST mirror reachable (connection timeout {timeout:g} s)"
    from urllib.error import URLError

    from torchvision.datasets import MNIST

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # every read of the download, not only the connection
    try:
        MNIST(str(root), train=True, download=True)
    except (RuntimeError, URLError, OSError) as exc:
        return f"download failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    finally:
        socket.setdefaulttimeout(old)
    return None


def load_mnist(root: str | os.PathLike | None = None, *, augment: bool = True,
               download: bool = True, normalize: bool = True, seed: int = 0,
               timeout: float = 5.0) -> Mnist:
    """MNIST for Section 8: the full set from ``root`` (or downloaded), else the bundled digits.

    ``root``: folder holding ``MNIST/raw/*-idx?-ubyte[.gz]`` (default :func:`default_data_dir`).
    ``download``: when the files are missing, let torchvision fetch them, giving up as soon
    as no mirror answers within ``timeout`` seconds. When the full set cannot be had, returns
    the 8,000 / 2,000 bundled digits (``source="bundled"``) with a
    :class:`BundledMnistWarning`. ``augment``: AutoAugment (CIFAR10 policy) on the training
    images, seeded per sample from ``seed`` and the epoch. ``normalize``: standardise pixels
    with :data:`MNIST_MEAN`, :data:`MNIST_STD`. Corrupt files raise ``ValueError`` naming them.
    """
    seed = check_int("seed", seed, 0)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    root = Path(root).expanduser() if root is not None else default_data_dir()
    why = None
    if not _have_full(root):
        if download:
            why = _download(root, float(timeout))
        else:
            why = "download=False"
        if why is None and not _have_full(root):
            why = "download finished without the expected files"
    if why is None:
        splits = _read_root(root)
        sizes = (splits["train"][0].shape[0], splits["test"][0].shape[0])
        if sizes == FULL_SIZES:
            source = "full"
        elif sizes == BUNDLED_SIZES:  # e.g. a copy of the bundled digits in MNIST layout
            source = "bundled"
        else:
            raise ValueError(f"{root / 'MNIST' / 'raw'}: holds {sizes[0]} train / {sizes[1]} "
                             f"test digits; MNIST has {FULL_SIZES[0]} / {FULL_SIZES[1]}")
        data_root: Path | None = root
    else:
        warnings.warn(
            f"full MNIST not found in {root / 'MNIST' / 'raw'} ({why}); using the "
            f"{BUNDLED_SIZES[0] + BUNDLED_SIZES[1]:,} MNIST digits bundled with fgln "
            f"({BUNDLED_SIZES[0]:,} train / {BUNDLED_SIZES[1]:,} test)",
            BundledMnistWarning, stacklevel=2)
        splits, source, data_root = _read_bundled(), "bundled", None
    aug = BatchedAutoAugment() if augment else None
    train = MnistDataset(*splits["train"], augment=aug, normalize=normalize, seed=seed)
    test = MnistDataset(*splits["test"], augment=None, normalize=normalize, seed=seed)
    return Mnist(train=train, test=test, source=source, root=data_root)
