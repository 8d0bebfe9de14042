"""The six benchmark cases of issue 8 on the real sample scans, and their classical baselines.

Every method sees the same measurement ``y`` (seeds fixed). Images are in physical units (HU for
the CT slice, 1/mm for the attenuation map, scanner units for MR); PSNR and SSIM use the clean
reference's max - min as the data range (the magnitude's for MRI). Classical baselines with a
free parameter (TV weight, NLM strength, FBP filter) appear twice where a user could tune them
without the clean image: self-tuned (denoisers: the J-invariant noise2self loss of scikit-image's
``calibrate_denoiser``, which sees only the noisy scan, as medip's automatic stop does) and
oracle-tuned on the clean reference, an upper bound that no user can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

import medip
from medip.io import Volume
from medip.engine.metrics import data_range_of, psnr, ssim
from medip.operators import gaussian, poisson
from medip.tasks import fit_defaults, hu_to_mu
from medip.operators import (Downsample, Fourier, Identity, LinearOperator, Mask, Radon, acs_lines,
                             cartesian_mask, estimate_sensitivities, random_pixel_mask)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
TV_WEIGHTS = (0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24)  # in units of the reference's range
NLM_STRENGTHS = (0.6, 0.8, 1.0, 1.2)  # h as a multiple of the noise sigma


@dataclass
class Case:
    """One measurement model with its data; ``volume`` is set for the 3D case."""

    name: str
    operator: LinearOperator
    y: torch.Tensor
    clean: torch.Tensor
    baselines: Callable[[], dict[str, torch.Tensor]]
    fit_options: dict = field(default_factory=dict)
    deepinv_physics: str = "wrapped"  # "denoising", "inpainting" or "wrapped" (medip's operator)
    volume: Volume | None = None

    def score(self, image: torch.Tensor) -> dict[str, float]:
        """PSNR and SSIM against the clean reference (magnitudes for complex images)."""
        image, clean = image.detach().cpu(), self.clean
        if image.is_complex() or clean.is_complex():
            image, clean = image.abs(), clean.abs()
        image = image.reshape(clean.shape).float()
        return {"psnr": psnr(image, clean), "ssim": ssim(image, clean)}


def ct_slice(size: int) -> torch.Tensor:
    """The real head CT slice (512x512, HU) area-resampled to ``size``: ``(1, 1, size, size)``."""
    ct = medip.load(SAMPLE / "ct_head_slice.dcm")
    hu = torch.from_numpy(ct.array[:, :, 0].T.copy())[None, None]
    return F.interpolate(hu, size=(size, size), mode="area")


def sigma_of(clean: torch.Tensor, fraction: float = 25 / 255) -> float:
    """Noise std as a fraction of the reference's display range (max - min)."""
    return fraction * data_range_of(clean)


def _skimage():
    try:
        import skimage.restoration as restoration
    except ImportError as err:  # the baselines need the dev or bench extra
        raise SystemExit("the classical baselines need scikit-image: pip install -e '.[dev]'") from err
    return restoration


def _best(candidates: dict[str, torch.Tensor], clean: torch.Tensor) -> tuple[str, torch.Tensor]:
    name = max(candidates, key=lambda k: psnr(candidates[k], clean))
    return name, candidates[name]


def _self_tuned(restoration, denoise: Callable, noisy: np.ndarray, grid: dict[str, list]) -> dict:
    """The grid point with the lowest J-invariant self-supervised loss (scikit-image's
    ``calibrate_denoiser``, noisy image only)."""
    _, (tested, losses) = restoration.calibrate_denoiser(noisy, denoise, grid, extra_output=True)
    return tested[int(np.argmin(losses))]


def denoising_baselines(noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, torch.Tensor]:
    """The noisy input, and TV (Chambolle) and non-local means (2D only: 3D takes minutes on the
    brain), each self-tuned and oracle-tuned; NLM's sigma is scikit-image's estimate from the
    noisy image in both."""
    restoration = _skimage()
    lo, span = float(clean.min()), data_range_of(clean)
    scaled = ((noisy[0, 0] - lo) / span).numpy().astype(np.float64)
    to_units = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32) * span + lo)[None, None]
    methods = {"TV": (restoration.denoise_tv_chambolle, {"weight": list(TV_WEIGHTS)})}
    if noisy.ndim == 4:
        sigma = float(restoration.estimate_sigma(scaled))
        nlm = lambda image, h: restoration.denoise_nl_means(
            image, h=h, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
        methods["NLM"] = (nlm, {"h": [k * sigma for k in NLM_STRENGTHS]})
    out = {"noisy input": noisy}
    for name, (denoise, grid) in methods.items():  # each grid point denoised once, for both rows
        (key, values), = grid.items()
        outputs = {v: to_units(denoise(scaled, **{key: v})) for v in values}
        out[f"{name} (self-tuned)"] = outputs[_self_tuned(restoration, denoise, scaled, grid)[key]]
        out[f"{name} (oracle {key})"] = _best(outputs, clean)[1]
    return out


def ct_denoise(quick: bool) -> Case:
    clean = ct_slice(32 if quick else 256)
    sigma = sigma_of(clean)
    noisy = gaussian(clean, sigma, seed=0)
    return Case("CT denoise", Identity(), noisy, clean,
                lambda: denoising_baselines(noisy, clean), deepinv_physics="denoising",
                fit_options={"ensemble": 2})  # the README's advice for a single 2D image


def sparse_ct(quick: bool) -> Case:
    size = 32 if quick else 256
    mu = hu_to_mu(ct_slice(size)).clamp(min=0)
    radon = Radon((size, size), 60, pixel_size=0.48 * 512 / size)  # the 0.48 mm slice resampled
    y = poisson(radon(mu), photons=1e4, seed=0).sinogram

    def baselines() -> dict[str, torch.Tensor]:
        fbp = {f: radon.pinv(y, filter=f) for f in ("ramp", "shepp-logan", "cosine", "hann")}
        name, best = _best(fbp, mu)
        return {"FBP ramp": fbp["ramp"], f"FBP (oracle filter: {name})": best}

    return Case("sparse CT 60 views 1e4 photons", radon, y, mu, baselines)


def mri(quick: bool) -> Case:
    """4x equispaced Cartesian with 8 % centre lines on the real 2-coil k-space; coil maps from
    the centre lines (ESPIRiT-free ratio method); reference: RSS of the full k-space."""
    kspace = torch.from_numpy(np.load(SAMPLE / "mr_kspace_gre_2coil.npy"))[None]
    shape = tuple(kspace.shape[-2:])
    reference = Fourier(shape).pinv(kspace)
    sampled = cartesian_mask(shape, 4, 0.08)
    y = kspace * sampled.mask
    maps = estimate_sensitivities(y[0], acs_lines(sampled.mask))
    operator = Fourier(shape, sampled.mask, maps.sensitivities)
    return Case("MRI 4x 2-coil", operator, y, reference,
                lambda: {"zero-filled RSS": Fourier(shape, sampled.mask).pinv(y)})


def inpaint(quick: bool) -> Case:
    clean = ct_slice(32 if quick else 256)
    known = random_pixel_mask(clean.shape[-2:], 0.5, seed=0)
    mask = Mask(known)
    y = mask(clean)

    def baselines() -> dict[str, torch.Tensor]:
        restoration = _skimage()
        filled = restoration.inpaint_biharmonic(clean[0, 0].numpy().astype(np.float64),
                                                ~known.numpy())
        return {"masked input": y, "biharmonic": torch.from_numpy(filled).float()[None, None]}

    return Case("inpaint 50% missing", mask, y, clean, baselines, deepinv_physics="inpainting",
                fit_options={"noise_free": True})  # the known pixels are exact


def superres(quick: bool) -> Case:
    clean = ct_slice(32 if quick else 256)
    down = Downsample(4)
    y = down(clean)
    return Case("super-resolution x4", down, y, clean, lambda: {"bicubic": down.pinv(y)},
                fit_options=fit_defaults("superres"))


def brain_3d(quick: bool) -> Case:
    """The 91x109x91 T1 brain with Gaussian noise of 25/255 of its range, slice by slice."""
    brain = medip.load(SAMPLE / "mr_brain_t1_2mm.nii.gz")
    if quick:
        brain = brain.with_array(brain.array[37:53, 46:62, 37:53].copy())
    clean = torch.from_numpy(brain.array)[None, None]
    sigma = sigma_of(clean)
    noisy = gaussian(clean, sigma, seed=0)
    return Case(f"3D brain denoise {'x'.join(map(str, brain.shape))}", Identity(), noisy, clean,
                lambda: denoising_baselines(noisy, clean), deepinv_physics="none",
                volume=brain.with_array(noisy[0, 0].numpy()))


CASES: dict[str, Callable[[bool], Case]] = {
    "ct-denoise": ct_denoise, "sparse-ct": sparse_ct, "mri": mri, "inpaint": inpaint,
    "superres": superres, "brain-3d": brain_3d}
