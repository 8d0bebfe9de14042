"""Block-matched collaborative Wiener filtering: BM3D's second step, with medip's own pilot.

Dabov et al. (2007, "Image denoising by sparse 3-D transform-domain collaborative filtering")
denoise in two steps; the second takes a first estimate (the *pilot*), and for every reference
patch on a grid finds the patches most like it in the pilot, within a search window. It stacks
the noisy image's patches at those places into a group, takes the group's 3D DCT (each patch's
2D DCT, then along the stack), and keeps each coefficient in the share ``P^2 / (P^2 + sigma^2)``,
where ``P`` is the pilot's coefficient. The groups' estimates are averaged back into the image,
each weighted by the inverse of the noise it lets through and by a Kaiser window.

medip's pilot is its refined DIP result (:func:`medip.engine.wiener.wiener_refine`), never BM3D's
first step (BM3D is not free for commercial use; this module is medip's own implementation of
the published method). Matching happens in an image free of noise (the DIP result), so similar
patches anywhere in the search window pool their noise away: the non-local part that the local
DCT windows of :mod:`medip.engine.wiener` lack. The parameters are the published method's
(8x8 patches, a reference every 3 pixels, Kaiser beta 2) with groups of :data:`GROUP` patches
and a search window of :data:`SEARCH` pixels either way; see :func:`matched_refine` for what they
gave.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .wiener import dct_matrix

#: Patch side, reference stride and Kaiser window of the published second step.
PATCH = 8
STRIDE = 3
KAISER_BETA = 2.0
#: Patches per group and the search window's reach (pixels either way of the reference).
GROUP = 16
SEARCH = 16
#: The smallest plane side filtered: two patches.
MIN_SIDE = 2 * PATCH
#: Reference patches filtered together: bounds the memory of a large plane's groups (about
#: 50 MB per array at 4096 references of 16 patches).
_CHUNK = 4096


def matched_refine(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float,
                   match: torch.Tensor | None = None) -> torch.Tensor:
    """``noisy`` (white Gaussian noise of std ``sigma``) filtered by the collaborative Wiener
    filter of its block-matched groups, weighed by ``pilot``'s energies and matched in
    ``match`` (default: the pilot; see the module docstring). All three are real ``(H, W)``
    planes, or stacks of them ``(..., H, W)`` filtered plane by plane, of one shape; planes need
    at least :data:`MIN_SIDE` pixels a side. With ``sigma`` 0 the noisy image comes back
    unchanged.

    Denoising (:func:`medip.tasks.restore.refine_denoised`) matches in its DIP result, which
    holds no noise, and weighs by that result's Wiener refinement, whose energies are nearer
    the image's. On the stop test bed's 12 denoised 128^2 slices (4 scans, noise 10, 25 and
    50/255), where that variant was chosen, this raised the refined result by a median
    +0.15 dB (+0.03 to +0.36 dB; matching in the refinement too gave +0.11, weighing by the
    DIP result -0.07); on 12 held-out slices by a median +0.03 dB (-0.19 to +0.47: gains on
    all six at 256^2, losses on five of the six small native 91x109 and 128x96 slices), SSIM
    a median 0.003 lower (``python -m benchmarks.wiener``,
    benchmarks/results/2026-12-05-vm-wiener-matched.md).
    """
    match = pilot if match is None else match
    if not noisy.shape == pilot.shape == match.shape:
        raise ValueError(f"matched_refine: the noisy image {tuple(noisy.shape)}, the pilot "
                         f"{tuple(pilot.shape)} and the matching image {tuple(match.shape)} "
                         f"differ in shape")
    if (any(x.is_complex() for x in (noisy, pilot, match)) or noisy.ndim < 2
            or min(noisy.shape[-2:]) < MIN_SIDE):
        raise ValueError(f"matched_refine: needs real planes of at least {MIN_SIDE}x{MIN_SIDE} "
                         f"pixels, got {tuple(noisy.shape)} {noisy.dtype}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"matched_refine: sigma must be a finite number >= 0, got {sigma}")
    if sigma == 0:
        return noisy.clone()
    planes = zip(*(x.detach().float().reshape(-1, *noisy.shape[-2:])
                   for x in (noisy, pilot, match)))
    out = torch.stack([_plane(y, p, m, sigma) for y, p, m in planes])
    return out.reshape(noisy.shape).to(noisy.dtype)


def _grid(n: int, pad: int) -> torch.Tensor:
    """Top-left corners (padded coordinates) of reference patches every :data:`STRIDE` pixels,
    centred on the plane's pixels from the first to the last."""
    corners = list(range(pad - PATCH // 2, pad + n - PATCH // 2, STRIDE))
    last = pad + n - 1 - PATCH // 2
    if corners[-1] != last:
        corners.append(last)
    return torch.tensor(corners)


def _plane(noisy: torch.Tensor, pilot: torch.Tensor, match: torch.Tensor,
           sigma: float) -> torch.Tensor:
    height, width = noisy.shape
    pad = min(SEARCH + PATCH, min(height, width) - 1)
    reach = pad - PATCH  # the search reach that the padding allows
    y, p, m = (F.pad(x[None, None], (pad,) * 4, mode="reflect")[0, 0]
               for x in (noisy, pilot, match))
    rows, cols = _grid(height, pad), _grid(width, pad)
    refs = torch.cartesian_prod(rows, cols)  # (references, 2)
    offsets = torch.cartesian_prod(torch.arange(-reach, reach + 1),
                                   torch.arange(-reach, reach + 1))
    # the squared distance of every reference patch to the patch at each offset, in the
    # matching image, from the integral image of the squared difference
    distances = torch.empty(len(offsets), len(refs), dtype=torch.float64)
    inner = m[reach:-reach or None, reach:-reach or None]
    # the references' four corners in the (1-padded) integral image of ``inner``, flattened
    r, c = (refs - reach).unbind(1)
    stride = inner.shape[1] + 1
    top_left = r * stride + c
    bottom_right, top_right, bottom_left = (top_left + PATCH * stride + PATCH,
                                            top_left + PATCH, top_left + PATCH * stride)
    for index, (dy, dx) in enumerate(offsets.tolist()):
        shifted = m[reach + dy:m.shape[0] - reach + dy, reach + dx:m.shape[1] - reach + dx]
        # in double: the running sums dwarf one patch's distance
        integral = F.pad(((inner - shifted).double() ** 2).cumsum(0).cumsum(1),
                         (1, 0, 1, 0)).reshape(-1)
        distances[index] = (integral[bottom_right] - integral[top_right]
                            - integral[bottom_left] + integral[top_left])
    group = min(GROUP, len(offsets))
    nearest = distances.topk(group, dim=0, largest=False).indices.T  # (references, group)
    ky, kx = torch.meshgrid(torch.arange(PATCH), torch.arange(PATCH), indexing="ij")
    within = (ky * y.shape[1] + kx).reshape(-1)
    square = torch.kron(dct_matrix(PATCH), dct_matrix(PATCH))  # rows: the 2D DCT's basis
    along = dct_matrix(group)
    kaiser = torch.kaiser_window(PATCH, periodic=False, beta=KAISER_BETA)
    taper = torch.outer(kaiser, kaiser).reshape(-1)
    numerator, denominator = torch.zeros(y.numel()), torch.zeros(y.numel())
    for start in range(0, len(refs), _CHUNK):
        chunk = slice(start, start + _CHUNK)
        at = refs[chunk, None, :] + offsets[nearest[chunk]]  # (references, group, 2)
        pixels = (at[..., 0] * y.shape[1] + at[..., 1])[..., None] + within  # (r, g, k*k)
        noisy_dct, pilot_dct = ((along @ (x.reshape(-1)[pixels] @ square.T)) for x in (y, p))
        weights = pilot_dct ** 2 / (pilot_dct ** 2 + sigma ** 2)
        estimate = along.T @ (weights * noisy_dct) @ square
        weight = taper / (sigma ** 2 * (weights ** 2).sum((1, 2))).clamp_min(1e-12)[:, None, None]
        numerator.index_add_(0, pixels.reshape(-1), (estimate * weight).reshape(-1))
        denominator.index_add_(0, pixels.reshape(-1), weight.expand_as(estimate).reshape(-1))
    image = (numerator / denominator.clamp_min(1e-30)).reshape(y.shape)
    return image[pad:pad + height, pad:pad + width]
