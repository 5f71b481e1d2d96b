"""torchvision's AutoAugment on a batch of grey images, one draw per image, vectorised.

Section 8 augments MNIST with ``AutoAugment(AutoAugmentPolicy.CIFAR10)`` from torchvision.
Applied image by image it costs more than the training step of the (small, linear) network;
:class:`BatchedAutoAugment` gives the same images much faster:

* the draw of image b, ``(policy_id, probs[2], signs[2])`` (what ``AutoAugment.get_params``
  returns), comes from a hash of ``(seed, epoch, index)`` (:meth:`BatchedAutoAugment.draws`),
  not from the global RNG, so it does not depend on the loader process, batch or order;
* the sub-policies and magnitudes are read from torchvision's ``AutoAugment`` object;
* each operation is applied once per batch position (first, then second operation of the
  sub-policies) to all the images it fires on, with per-image magnitudes: the affine
  operations through one ``grid_sample`` with a per-image matrix (torchvision's inverse
  matrices and grid), the colour operations as per-image blends, Equalize through per-image
  histograms instead of torchvision's Python loop over images.

The result equals torchvision's ``AutoAugment.forward`` image by image, bit for bit, given the
same draws (tests/test_data.py checks every sub-policy). Grey images only ([B, 1, H, W],
uint8), interpolation NEAREST and no fill, the defaults of ``AutoAugment``.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch.nn import functional as F

Tensor = torch.Tensor

__all__ = ["BatchedAutoAugment"]

_AFFINE = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_BLENDS = ("Brightness", "Contrast", "Sharpness")


@functools.lru_cache(maxsize=4096)
def _inverse_affine(op: str, magnitude: float, h: int, w: int) -> tuple[float, ...]:
    """The inverse matrix torchvision's ``_apply_op`` passes to ``F.affine`` / ``F.rotate``
    (cached: the policy has few distinct magnitudes)."""
    return tuple(_inverse_affine_matrix(op, magnitude, h, w))


def _inverse_affine_matrix(op: str, magnitude: float, h: int, w: int) -> list[float]:
    from torchvision.transforms.functional import _get_inverse_affine_matrix

    if op == "ShearX":  # F.affine(center=[0, 0]): centre in image-centred coordinates
        return _get_inverse_affine_matrix([-0.5 * w, -0.5 * h], 0.0, [0.0, 0.0], 1.0,
                                          [math.degrees(math.atan(magnitude)), 0.0])
    if op == "ShearY":
        return _get_inverse_affine_matrix([-0.5 * w, -0.5 * h], 0.0, [0.0, 0.0], 1.0,
                                          [0.0, math.degrees(math.atan(magnitude))])
    if op == "TranslateX":
        return _get_inverse_affine_matrix([0.0, 0.0], 0.0, [float(int(magnitude)), 0.0], 1.0,
                                          [0.0, 0.0])
    if op == "TranslateY":
        return _get_inverse_affine_matrix([0.0, 0.0], 0.0, [0.0, float(int(magnitude))], 1.0,
                                          [0.0, 0.0])
    if op == "Rotate":
        return _get_inverse_affine_matrix([0.0, 0.0], -magnitude, [0.0, 0.0], 1.0, [0.0, 0.0])
    raise ValueError(f"not an affine operation: {op!r}")


def _affine(img: Tensor, matrices: list[tuple[float, ...]]) -> Tensor:
    """torchvision's tensor ``affine`` (nearest, no fill) with one matrix per image."""
    b, _, h, w = img.shape
    theta = torch.tensor(matrices, dtype=torch.float32).reshape(b, 2, 3)
    d = 0.5  # torchvision's _gen_affine_grid, batched over theta
    base = torch.empty(1, h, w, 3, dtype=theta.dtype)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + d, w * 0.5 + d - 1, steps=w))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + d, h * 0.5 + d - 1, steps=h).unsqueeze_(-1))
    base[..., 2].fill_(1)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=theta.dtype)
    grid = base.view(1, h * w, 3).expand(b, h * w, 3).bmm(rescaled).view(b, h, w, 2)
    out = F.grid_sample(img.to(torch.float32), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return torch.round(out).to(torch.uint8)


def _blend(img1: Tensor, img2: Tensor, ratios: list[float]) -> Tensor:
    """torchvision's ``_blend`` with one ratio per image (float32, as for a Python scalar)."""
    r = torch.tensor(ratios, dtype=torch.float32).view(-1, 1, 1, 1)
    rc = torch.tensor([1.0 - x for x in ratios], dtype=torch.float32).view(-1, 1, 1, 1)
    return (r * img1 + rc * img2).clamp(0, 255).to(img1.dtype)


def _equalize(img: Tensor) -> Tensor:
    """torchvision's ``equalize`` (``_scale_channel`` per image), all images at once."""
    b = img.shape[0]
    flat = img.reshape(b, -1).to(torch.int64)
    hist = torch.zeros(b, 256, dtype=torch.int64).scatter_add_(1, flat, torch.ones_like(flat))
    # sum of the non-zero bins but the last one = all pixels but those of the largest value
    step = (flat.shape[1] - hist.gather(1, flat.amax(1, keepdim=True))) // 255  # [b, 1]
    lut = (hist.cumsum(1) + step // 2) // step.clamp(min=1)
    lut = F.pad(lut, [1, 0])[:, :-1].clamp(0, 255)
    out = lut.gather(1, flat).to(torch.uint8).reshape(img.shape)
    return torch.where((step == 0).view(b, 1, 1, 1), img, out)


def _apply(op: str, img: Tensor, mags: list[float]) -> Tensor:
    """Operation ``op`` on images [b, 1, H, W] uint8 with magnitudes ``mags`` [b]."""
    from torchvision.transforms import _functional_tensor as FT

    h, w = img.shape[-2:]
    if op in _AFFINE:
        return _affine(img, [_inverse_affine(op, m, h, w) for m in mags])
    if op == "Brightness":
        return _blend(img, torch.zeros_like(img), [1.0 + m for m in mags])
    if op == "Contrast":
        mean = torch.mean(img.to(torch.float32), dim=(-3, -2, -1), keepdim=True)
        return _blend(img, mean, [1.0 + m for m in mags])
    if op == "Sharpness":
        return _blend(img, FT._blurred_degenerate_image(img), [1.0 + m for m in mags])
    if op == "Color":  # saturation of a grey image: unchanged (torchvision, like PIL)
        return img
    if op == "Posterize":
        keep = torch.tensor([256 - 2 ** (8 - int(m)) for m in mags], dtype=torch.uint8)
        return img & keep.view(-1, 1, 1, 1)
    if op == "Solarize":
        thr = torch.tensor(mags, dtype=torch.float32).view(-1, 1, 1, 1)
        return torch.where(img >= thr, 255 - img, img)
    if op == "AutoContrast":
        return FT.autocontrast(img)
    if op == "Equalize":
        return _equalize(img)
    if op == "Invert":
        return 255 - img
    if op == "Identity":
        return img
    raise ValueError(f"unknown AutoAugment operation {op!r}")


_M64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (a bijective 64-bit mix)."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_M64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class BatchedAutoAugment:
    """torchvision's ``AutoAugment(policy)`` (default CIFAR10) on a batch, one draw per image.

    ``aug(images, aug.draws(seed, epoch, indices))``: images uint8 [B, 1, H, W] -> same shape.
    See the module docstring.

    Parameters
    ----------
    policy : torchvision.transforms.AutoAugmentPolicy or None
        The policy whose sub-policies are applied; None: ``AutoAugmentPolicy.CIFAR10``.

    Raises
    ------
    ValueError
        If torchvision's transform does not use NEAREST interpolation without fill.
    """

    def __init__(self, policy=None) -> None:
        from torchvision.transforms import AutoAugment, AutoAugmentPolicy, InterpolationMode

        self.transform = AutoAugment(AutoAugmentPolicy.CIFAR10 if policy is None else policy)
        if self.transform.interpolation != InterpolationMode.NEAREST or self.transform.fill:
            raise ValueError("BatchedAutoAugment reproduces NEAREST interpolation without fill")
        self.policy = self.transform.policy
        self.policies = self.transform.policies
        self.op_names = sorted({op for pol in self.policies for op, _, _ in pol})
        # per (sub-policy, position): operation index and probability (float32, as compared
        # by AutoAugment.forward: a float32 draw against the Python probability)
        self._op = torch.tensor([[self.op_names.index(op) for op, _, _ in pol]
                                 for pol in self.policies])
        self._p = torch.tensor([[p for _, p, _ in pol] for pol in self.policies],
                               dtype=torch.float32)
        self._tables: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"BatchedAutoAugment({self.policy})"

    def draws(self, seed: int, epoch: int, indices) -> tuple[list[int], Tensor, Tensor]:
        """``(policy_ids [B], probs [B, 2] in [0, 1), signs [B, 2] in {0, 1})`` for the images
        ``indices``: a function of ``(seed, epoch, index)`` only (SplitMix64 of the three,
        four 64-bit words per image).

        Parameters
        ----------
        seed : int
            Seed of the augmentation.
        epoch : int
            The epoch (a new draw for every epoch).
        indices : iterable of int
            Indices of the images in the data set [B].

        Returns
        -------
        policy_ids : list of int
            Sub-policy of each image [B].
        probs : Tensor
            Uniform draws in [0, 1) [B, 2] (float32), compared with the two operations'
            probabilities.
        signs : Tensor
            Signs of the two magnitudes [B, 2] in {0, 1} (int64; 0: negative).
        """
        idx = np.asarray([int(i) for i in indices], dtype=np.uint64)
        with np.errstate(over="ignore"):
            key = _splitmix64(_splitmix64(np.array([seed], dtype=np.uint64))
                              ^ np.array([epoch], dtype=np.uint64))
            u = [_splitmix64(_splitmix64(key ^ idx) + np.uint64(j)) for j in range(4)]
        ids = (u[0] % np.uint64(len(self.policies))).astype(np.int64).tolist()
        probs = np.stack([(u[1] >> np.uint64(11)), (u[2] >> np.uint64(11))], 1)
        probs = torch.from_numpy(probs.astype(np.float64) * 2.0 ** -53).to(torch.float32)
        signs = torch.from_numpy(np.stack([u[3] & np.uint64(1), (u[3] >> np.uint64(1))
                                           & np.uint64(1)], 1).astype(np.int64))
        return ids, probs, signs

    def _magnitude_table(self, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Per (sub-policy, position): the magnitude (float64 of torchvision's float32 value)
        and whether the operation is signed."""
        if (h, w) not in self._tables:
            space = self.transform._augmentation_space(10, (h, w))
            mags, signed = [], []
            for pol in self.policies:
                row_m, row_s = [], []
                for op, _, mag_id in pol:
                    values, sgn = space[op]
                    row_m.append(float(values[mag_id].item()) if mag_id is not None else 0.0)
                    row_s.append(bool(sgn))
                mags.append(row_m)
                signed.append(row_s)
            self._tables[(h, w)] = (torch.tensor(mags, dtype=torch.float64),
                                    torch.tensor(signed))
        return self._tables[(h, w)]

    def _decide(self, draws, h: int, w: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(fires [B, 2] bool, op index [B, 2], signed magnitude [B, 2] float64)``, as
        ``AutoAugment.forward`` decides them."""
        ids, probs, signs = draws
        ids = torch.as_tensor(ids, dtype=torch.int64)
        mags, signed = self._magnitude_table(h, w)
        fires = probs <= self._p[ids]
        m = mags[ids]
        m = torch.where(signed[ids] & (signs == 0), -m, m)
        return fires, self._op[ids], m

    def operations(self, drawn, h: int, w: int) -> list[list[tuple[str, float]]]:
        """The operations that fire for each image, in order, with signed magnitudes.

        Parameters
        ----------
        drawn : tuple
            ``(policy_ids, probs, signs)`` from :meth:`draws`.
        h : int
            Image height.
        w : int
            Image width.

        Returns
        -------
        ops : list of list of tuple of (str, float)
            For each image, the operations that fire, in order, as ``(name, signed magnitude)``.
        """
        fires, ops, mags = self._decide(drawn, h, w)
        return [[(self.op_names[int(ops[b, i])], float(mags[b, i])) for i in (0, 1)
                 if bool(fires[b, i])] for b in range(fires.shape[0])]

    def __call__(self, images: Tensor, draws) -> Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must be uint8 [B, 1, H, W], got {images.dtype} "
                             f"{list(images.shape)}")
        if len(draws[0]) != images.shape[0]:
            raise ValueError(f"{len(draws[0])} draws for {images.shape[0]} images")
        fires, ops, mags = self._decide(draws, *images.shape[-2:])
        out = images.clone()
        for pos in (0, 1):  # first operation of every image, then the second
            present = torch.unique(ops[fires[:, pos], pos]).tolist()
            for k in present:
                sel = torch.nonzero(fires[:, pos] & (ops[:, pos] == k)).squeeze(1)
                out[sel] = _apply(self.op_names[k], out[sel], mags[sel, pos].tolist())
        return out
