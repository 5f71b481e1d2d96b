"""MNIST for the experiment of Section 8: the full data set where available, else bundled digits.

:func:`load_mnist` returns an :class:`Mnist` with ``.train`` and ``.test`` datasets of
``(image [1, 28, 28] float32, label int)`` and ``.source``:

* ``"full"``: the 60,000 / 10,000 digits of MNIST, read from ``root/MNIST/raw`` (the layout
  of ``torchvision.datasets.MNIST``) or downloaded there by torchvision when ``download=True``
  and a mirror answers within ``timeout`` seconds;
* ``"bundled"``: otherwise, 10,000 real MNIST digits shipped inside the package
  (``fgln/mnist/bundled``, 8,000 train / 2,000 test, checked against their SHA-256), with a
  :class:`BundledMnistWarning`. A machine without network falls back at once, never fails.

The choice (``choice=`` or ``$FGLN_MNIST``): ``"auto"`` (default) as above; ``"full"`` insists
on the full set and raises :class:`MnistUnavailableError` when it is neither in ``root`` nor
downloadable (:func:`check_mnist_choice` does that check alone, before a long build);
``"bundled"`` uses the bundled digits without looking for the full set.

Every IDX file (raw or ``.gz``) goes through :func:`fgln.mnist.idx_format.read_idx`, which checks
the
header and the length: a truncated or corrupt file raises ``ValueError`` naming the file.

With ``augment=True`` each training image goes through torchvision's
``AutoAugment(AutoAugmentPolicy.CIFAR10)`` (as in Section 8), with a draw that depends only on
``(seed, epoch, index)``: the augmented data are the same for any number of ``DataLoader``
workers and after a resume, given :meth:`MnistDataset.set_epoch`. The first item fetched in an
epoch augments every image of the epoch in vectorised calls of :data:`AUGMENT_CHUNK` images
(:class:`fgln.mnist.augment.BatchedAutoAugment`, equal to torchvision's transform image by image),
and the later ones read them: since an image's draw depends only on ``(seed, epoch, index)``
these are the images a batch-by-batch augmentation gives, at a quarter of its cost (the
per-call overhead is paid once per chunk, not once per mini-batch).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..base.paths import find_repo_root, local_dir
from ..base.validation import check_int
from . import fetch
from .augment import BatchedAutoAugment
from .idx_format import check_split, decompress, read_idx

__all__ = [
    "AUGMENT_CHUNK",
    "BUNDLED_SHA256",
    "BUNDLED_SIZES",
    "FULL_SIZES",
    "MNIST_MEAN",
    "MNIST_STD",
    "BatchedAutoAugment",
    "MNIST_CHOICES",
    "BundledMnistWarning",
    "Mnist",
    "MnistDataset",
    "MnistUnavailableError",
    "check_mnist_choice",
    "check_mnist_choice_or_exit",
    "default_data_dir",
    "describe_data_dir",
    "load_mnist",
    "mnist_choice",
]

# Pixel mean and standard deviation of the MNIST training set (grey levels scaled to [0, 1]).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
FULL_SIZES = (60_000, 10_000)
MNIST_CHOICES = ("auto", "full", "bundled")  # values of $FGLN_MNIST
BUNDLED_SIZES = (8_000, 2_000)
#: Images per vectorised augmentation call when an epoch's images are augmented.
AUGMENT_CHUNK = 4096
_FILES = {  # split -> (images, labels), file names of the IDX format
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of the uncompressed bundled IDX files (see fgln/mnist/bundled/README.md).
BUNDLED_SHA256 = {
    "train-images-idx3-ubyte": "e63f2f57fc22447cd6e38fd8454bdd727918cdc7712e08321f29d7aa72f3b3ba",
    "train-labels-idx1-ubyte": "53a57a7e2134bea4f0906df81cdf890b1e5e5c319fc88274726dbeea8eb328c9",
    "t10k-images-idx3-ubyte": "83409ed8201e7ab11ae718e2513b083e175d306e2b29e86a599b4627fcd045d2",
    "t10k-labels-idx1-ubyte": "054c0e9ea06f1f8bd83f0270ebe024f241e0c41a5cb94aa6d53f0845f9349800",
}


class BundledMnistWarning(UserWarning):
    """The full MNIST was not available: the bundled 10,000 digits are used instead."""


class MnistUnavailableError(RuntimeError):
    """``FGLN_MNIST=full`` (or ``choice="full"``) but the full MNIST cannot be had."""


# --------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------


class MnistDataset(Dataset):
    """MNIST digits as ``(image [1, 28, 28] float32, label int)``.

    ``images`` uint8 [N, 28, 28], ``labels`` [N] in 0..9. Each item is, in order: the uint8
    image [1, 28, 28]; with ``augment`` (a :class:`.BatchedAutoAugment`), its augmentation drawn
    from ``(seed, epoch, index)``, so reproducible whatever the ``DataLoader`` worker, batch or
    order that fetches it; scaling to [0, 1]; with ``normalize``,
    ``(x - MNIST_MEAN) / MNIST_STD``. The first item fetched in an epoch augments every image
    of the epoch (kept until the epoch or seed changes; not pickled to loader processes, which
    augment their own copy); ``__getitems__`` (used by ``DataLoader`` for a whole batch) gives
    the same items as ``__getitem__``.

    Parameters
    ----------
    images : Tensor
        uint8 [N, 28, 28].
    labels : Tensor
        [N], in 0..9.
    augment : BatchedAutoAugment or None
        The training augmentation; None for none.
    normalize : bool
        Standardise pixels with ``MNIST_MEAN``, ``MNIST_STD``.
    seed : int
        Start value of the augmentation draws (>= 0).

    Raises
    ------
    ValueError
        If ``images`` or ``labels`` has the wrong dtype or shape, or ``augment`` the wrong type.
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
        self._augmented: tuple[tuple[int, int], torch.Tensor] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_augmented"] = None  # a loader process augments its own copy
        return state

    def augmented_images(self) -> torch.Tensor:
        """Every image of the current epoch, augmented: uint8 [N, 1, 28, 28] (computed once
        per ``(seed, epoch)``, in calls of :data:`AUGMENT_CHUNK` images; the images
        themselves without augmentation).

        Returns
        -------
        images : Tensor
            uint8 [N, 1, 28, 28]; image i is the augmentation drawn from ``(seed, epoch, i)``.
        """
        if self.augment is None:
            return self.images[:, None]
        key = (self.seed, self.epoch)
        if self._augmented is None or self._augmented[0] != key:
            self._augmented = None  # free the previous epoch's images first
            n = len(self)
            chunks = [self.augment(self.images[i: i + AUGMENT_CHUNK, None],
                                   self.augment.draws(self.seed, self.epoch,
                                                      range(i, min(i + AUGMENT_CHUNK, n))))
                      for i in range(0, n, AUGMENT_CHUNK)]
            self._augmented = (key, torch.cat(chunks) if chunks else self.images[:, None])
        return self._augmented[1]

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before iterating over an epoch).

        Parameters
        ----------
        epoch : int
            The epoch (>= 0).
        """
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
        (training set) and normalised as the items are.

        Parameters
        ----------
        indices : iterable of int
            Item indices (negative ones count from the end).

        Returns
        -------
        x : Tensor
            Images [B, 1, 28, 28] float32.
        y : Tensor
            Labels [B] int64.

        Raises
        ------
        IndexError
            If an index is out of range.
        """
        idx = self._indices(indices)
        if self.augment is not None and idx:
            imgs = self.augmented_images()[idx]  # uint8 [B, 1, 28, 28]
        else:
            imgs = self.images[idx][:, None]
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
        """The first ``count`` items, same augmentation and normalisation (for quick runs).

        Parameters
        ----------
        count : int
            How many (in [1, len(self)]).

        Returns
        -------
        subset : MnistDataset
            Same seed and epoch.
        """
        count = check_int("count", count, 1, len(self))
        out = MnistDataset(self.images[:count], self.labels[:count], augment=self.augment,
                           normalize=self.normalize, seed=self.seed)
        out.epoch = self.epoch
        return out


@dataclass(frozen=True)
class Mnist:
    """The two splits, where they came from (``source``: ``"full"`` or ``"bundled"``) and
    the choice that was asked for (``"auto"``, ``"full"`` or ``"bundled"``).

    Parameters
    ----------
    train, test, source, root, choice
        The attributes below, in this order.

    Attributes
    ----------
    train : MnistDataset
        The training split.
    test : MnistDataset
        The test split.
    source : str
        ``"full"`` or ``"bundled"``.
    root : pathlib.Path or None
        Folder holding ``MNIST/raw`` for the full set; None for the bundled digits.
    choice : str
        ``"auto"``, ``"full"`` or ``"bundled"``.
    """

    train: MnistDataset
    test: MnistDataset
    source: str
    root: Path | None  # folder holding MNIST/raw for "full"; None for "bundled"
    choice: str = "auto"


# --------------------------------------------------------------------------------------
# where the digits come from
# --------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$FGLN_DATA_DIR`` if set, else ``<repo>/.cache/data`` in a checkout, else
    ``~/.cache/fgln/data``: the ``root`` used when :func:`load_mnist` gets none.

    Returns
    -------
    root : pathlib.Path
        The default data folder (not created).
    """
    return local_dir("FGLN_DATA_DIR", ".cache/data", "fgln/data")


def describe_data_dir(root: str | os.PathLike) -> str:
    """Name ``root`` for a reader, without the machine's absolute path: ``"the project's data
    folder (.cache/data)"``, ``"the folder named by FGLN_DATA_DIR"``, else ``root`` itself.

    Parameters
    ----------
    root : str or os.PathLike
        A data folder.

    Returns
    -------
    text : str
        Words naming the folder for a reader.
    """
    root = Path(root).expanduser().resolve()
    env = os.environ.get("FGLN_DATA_DIR")
    if env and Path(env).expanduser().resolve() == root:
        return "the folder named by FGLN_DATA_DIR"
    repo = find_repo_root()
    if repo is not None and (repo / ".cache" / "data").resolve() == root:
        return "the project's data folder (.cache/data)"
    if root == (Path.home() / ".cache" / "fgln" / "data").resolve():
        return "the user's data folder (~/.cache/fgln/data)"
    return str(root)


def mnist_choice(choice: str | None = None) -> str:
    """``choice``, else ``$FGLN_MNIST``, else ``"auto"``; one of :data:`MNIST_CHOICES`.

    Parameters
    ----------
    choice : str or None
        ``"auto"``, ``"full"`` or ``"bundled"`` (any case, surrounding spaces ignored); None
        reads ``FGLN_MNIST``.

    Returns
    -------
    choice : str
        The choice, lower case.

    Raises
    ------
    TypeError
        If ``choice`` is not a str.
    ValueError
        If it is not one of :data:`MNIST_CHOICES` (the message names ``FGLN_MNIST`` when read
        from there).
    """
    name = "choice"
    if choice is None:
        choice, name = os.environ.get("FGLN_MNIST") or "auto", "FGLN_MNIST"
    if not isinstance(choice, str):
        raise TypeError(f"{name} must be a str, got {type(choice).__name__}")
    if choice.strip().lower() not in MNIST_CHOICES:
        raise ValueError(f"{name} must be one of {', '.join(MNIST_CHOICES)}, got {choice!r}")
    return choice.strip().lower()


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
    folder = resources.files("fgln.mnist") / "bundled"
    out = {}
    for split, names in _FILES.items():
        tensors = []
        for n in names:
            res = folder / f"{n}.gz"
            label = f"bundled {n}.gz (fgln/mnist/bundled)"
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


def _unavailable(root: Path, why: str) -> MnistUnavailableError:
    return MnistUnavailableError(
        f"FGLN_MNIST=full: the full MNIST is not in MNIST/raw under {describe_data_dir(root)} and "
        f"could not be downloaded ({why}). Put its four IDX files (torchvision's layout) in "
        "that folder, or point FGLN_DATA_DIR at a folder holding them, or set FGLN_MNIST=auto "
        "(bundled digits when the full set is absent) or FGLN_MNIST=bundled.")


def _find_full(root: Path, download: bool, timeout: float) -> str | None:
    """None when ``root`` holds (or, downloading, now holds) the MNIST files, else why not."""
    if _have_full(root):
        return None
    why = fetch.download(root, timeout) if download else "download=False"
    if why is None and not _have_full(root):
        why = "download finished without the expected files"
    return why


def check_mnist_choice(root: str | os.PathLike | None = None, *, choice: str | None = None,
                       timeout: float = 5.0) -> str:
    """Check, before a long build, that the MNIST choice can be honoured; return the choice.

    With ``"full"``: the full set must be in ``root`` (default :func:`default_data_dir`) or
    downloadable there, else :class:`MnistUnavailableError`. Other choices always can be.

    Parameters
    ----------
    root : str, os.PathLike or None
        Data folder (default :func:`default_data_dir`).
    choice : str or None
        ``"auto"``, ``"full"`` or ``"bundled"``; None reads ``FGLN_MNIST``.
    timeout : float
        Seconds to wait for a mirror when the full set has to be downloaded.

    Returns
    -------
    choice : str
        The choice, lower case.

    Raises
    ------
    MnistUnavailableError
        If the choice is ``"full"`` and the full set is neither present nor downloadable.
    TypeError, ValueError
        If the choice is not a valid one (:func:`mnist_choice`).
    """
    choice = mnist_choice(choice)
    if choice == "full":
        root = Path(root).expanduser() if root is not None else default_data_dir()
        why = _find_full(root, True, float(timeout))
        if why is not None:
            raise _unavailable(root, why)
    return choice


def check_mnist_choice_or_exit() -> None:
    """:func:`check_mnist_choice` for ``make book``: print the choice, or exit with why not."""
    try:
        print(f"MNIST: {check_mnist_choice()} (FGLN_MNIST)")
    except (MnistUnavailableError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None


def load_mnist(root: str | os.PathLike | None = None, *, augment: bool = True,
               download: bool = True, normalize: bool = True, seed: int = 0,
               timeout: float = 5.0, choice: str | None = None) -> Mnist:
    """MNIST for Section 8: the full set from ``root`` (or downloaded), else the bundled digits.

    ``root``: folder holding ``MNIST/raw/*-idx?-ubyte[.gz]`` (default :func:`default_data_dir`).
    ``download``: when the files are missing, let torchvision fetch them, giving up as soon
    as no mirror answers within ``timeout`` seconds. When the full set cannot be had, returns
    the 8,000 / 2,000 bundled digits (``source="bundled"``) with a
    :class:`BundledMnistWarning`. ``augment``: AutoAugment (CIFAR10 policy) on the training
    images, seeded per sample from ``seed`` and the epoch. ``normalize``: standardise pixels
    with :data:`MNIST_MEAN`, :data:`MNIST_STD`. Corrupt files raise ``ValueError`` naming them.
    ``choice``: ``"auto"``, ``"full"`` or ``"bundled"`` (default ``$FGLN_MNIST``, else
    ``"auto"``; see the module's docstring).

    Parameters
    ----------
    root : str, os.PathLike or None
        Data folder (default :func:`default_data_dir`).
    augment : bool
        AutoAugment the training images.
    download : bool
        Try to download the full set when missing.
    normalize : bool
        Standardise pixels.
    seed : int
        Start value of the augmentation draws (>= 0).
    timeout : float
        Seconds to wait for a mirror (> 0).
    choice : str or None
        ``"auto"``, ``"full"`` or ``"bundled"``; None reads ``FGLN_MNIST``.

    Returns
    -------
    data : Mnist
        The two splits and their source.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer or ``choice`` not a string.
    ValueError
        If an argument is out of range or a file is corrupt or of the wrong size.
    MnistUnavailableError
        With ``choice="full"`` when the full set can be neither found nor downloaded.

    Warns
    -----
    BundledMnistWarning
        With ``choice="auto"`` when the bundled digits are used.
    """
    seed = check_int("seed", seed, 0)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    choice = mnist_choice(choice)
    root = Path(root).expanduser() if root is not None else default_data_dir()
    if choice == "bundled":
        why = "FGLN_MNIST=bundled"
    else:
        why = _find_full(root, download, float(timeout))
    if why is None:
        splits = _read_root(root)
        sizes = (splits["train"][0].shape[0], splits["test"][0].shape[0])
        if sizes == FULL_SIZES:
            source = "full"
        elif sizes == BUNDLED_SIZES and choice != "full":  # a copy of the bundled digits
            source = "bundled"
        elif choice == "full":
            raise _unavailable(root, f"it holds {sizes[0]} train / {sizes[1]} test digits")
        else:
            raise ValueError(f"{root / 'MNIST' / 'raw'}: holds {sizes[0]} train / {sizes[1]} "
                             f"test digits; MNIST has {FULL_SIZES[0]} / {FULL_SIZES[1]}")
        data_root: Path | None = root
    elif choice == "full":
        raise _unavailable(root, why)
    else:
        if choice == "auto":
            warnings.warn(
                f"full MNIST not found in MNIST/raw under {describe_data_dir(root)} ({why}); using "
                f"the {BUNDLED_SIZES[0] + BUNDLED_SIZES[1]:,} MNIST digits bundled with fgln "
                f"({BUNDLED_SIZES[0]:,} train / {BUNDLED_SIZES[1]:,} test)",
                BundledMnistWarning, stacklevel=2)
        splits, source, data_root = _read_bundled(), "bundled", None
    aug = BatchedAutoAugment() if augment else None
    train = MnistDataset(*splits["train"], augment=aug, normalize=normalize, seed=seed)
    test = MnistDataset(*splits["test"], augment=None, normalize=normalize, seed=seed)
    return Mnist(train=train, test=test, source=source, root=data_root, choice=choice)
