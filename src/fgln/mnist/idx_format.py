"""MNIST's IDX file format: :func:`read_idx` reads one file (raw or gzip) and checks its
header and length, so that a truncated or corrupt file raises ``ValueError`` naming it.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import torch

__all__ = ["read_idx", "decompress", "check_split"]


def decompress(raw: bytes, name: str) -> bytes:
    """gunzip ``raw``; ``ValueError`` naming ``name`` for a corrupt or truncated stream.

    Parameters
    ----------
    raw : bytes
        A gzip stream.
    name : str
        The file's name, quoted in the error message.

    Returns
    -------
    data : bytes
        The decompressed bytes.

    Raises
    ------
    ValueError
        If the stream is corrupt or truncated.
    """
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{name}: corrupt or truncated gzip file ({exc})") from None


def read_idx(source: str | os.PathLike | bytes, *, name: str | None = None) -> torch.Tensor:
    """Read an IDX file of unsigned bytes (the MNIST format) into a uint8 tensor.

    ``source``: a path (``.gz`` is decompressed) or the file's bytes (then ``name`` names it
    in messages). Header: two zero bytes, type code ``0x08`` (uint8), the number of
    dimensions d (1..4), d big-endian uint32 sizes, then exactly ``prod(sizes)`` bytes.
    Raises ``ValueError`` naming the file for a corrupt gzip stream, a bad header, or a data
    length that differs from the header's (truncated or padded file).

    Parameters
    ----------
    source : str or os.PathLike or bytes
        Path of the file (gzip or raw), or its bytes.
    name : str or None
        The file's name in error messages; None: the path (or ``"<bytes>"``).

    Returns
    -------
    data : Tensor
        The file's array, uint8, of the header's sizes (e.g. [N, 28, 28] images or [N]
        labels).

    Raises
    ------
    ValueError
        If the file is missing, its gzip stream is corrupt, its header is not an IDX header of
        unsigned bytes, or its length differs from the header's.
    """
    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), name or "<bytes>"
        if data[:2] == b"\x1f\x8b":
            data = decompress(data, label)
    else:
        path = Path(source)
        label = name or str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ValueError(f"{label}: no such file") from None
        if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
            data = decompress(data, label)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{label}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    if data[2] != 0x08:
        raise ValueError(f"{label}: IDX type code 0x{data[2]:02x}, expected 0x08 (unsigned bytes)")
    ndim = data[3]
    if not 1 <= ndim <= 4:
        raise ValueError(f"{label}: IDX header gives {ndim} dimensions, expected 1 to 4")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{label}: truncated IDX header ({len(data)} bytes)")
    sizes = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = 1
    for s in sizes:
        count *= s
    if len(data) != header + count:
        raise ValueError(
            f"{label}: truncated or corrupt IDX file: header says {sizes} "
            f"({header + count} bytes), file has {len(data)} bytes")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(sizes)


def check_split(images: torch.Tensor, labels: torch.Tensor, names: tuple[str, str]) -> None:
    """``ValueError`` naming the file unless ``images`` [N, 28, 28] and ``labels`` [N] in 0..9.

    Parameters
    ----------
    images : Tensor
        Images of one split, expected [N, 28, 28].
    labels : Tensor
        Their labels, expected [N] with values in 0..9.
    names : tuple of (str, str)
        The files the images and labels came from, quoted in the error messages.

    Raises
    ------
    ValueError
        If the shapes or the label range are not MNIST's.
    """
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"{names[0]}: expected images [N, 28, 28], got {list(images.shape)}")
    if labels.ndim != 1:
        raise ValueError(f"{names[1]}: expected labels [N], got {list(labels.shape)}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{names[0]} has {images.shape[0]} images but {names[1]} has "
                         f"{labels.shape[0]} labels")
    if labels.numel() and int(labels.max()) > 9:
        raise ValueError(f"{names[1]}: label {int(labels.max())} outside 0..9")
