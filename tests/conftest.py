"""Shared fixtures: the real scans bundled in sample_data/, prepared once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
import torch.nn.functional as F

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def ct_hu() -> np.ndarray:
    """The real head CT slice in Hounsfield units (512x512)."""
    ds = pydicom.dcmread(SAMPLE / "ct_head_slice.dcm")
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.fixture(scope="session")
def ct_128(ct_hu) -> torch.Tensor:
    """The real head CT slice at 128x128, scaled to [0, 1]."""
    hu = torch.tensor(ct_hu, dtype=torch.float32).clamp(min=-1000)[None, None]
    image = F.avg_pool2d(hu, 4)[0, 0]
    return (image - image.min()) / (image.max() - image.min())


@pytest.fixture(scope="session")
def ct_mu_256(ct_hu) -> torch.Tensor:
    """The CT slice as attenuation (1/mm), resampled to 256x256 and zero outside the FOV circle."""
    from medip.tasks import hu_to_mu

    mu = hu_to_mu(torch.tensor(ct_hu, dtype=torch.float32))[None, None]
    mu = F.interpolate(mu, size=(256, 256), mode="area")
    return mu * fov_circle(256)


def fov_circle(n: int, radius: float | None = None) -> torch.Tensor:
    """The reconstruction circle inscribed in an n x n image."""
    c = (n - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(n) - c, torch.arange(n) - c, indexing="ij")
    return ((yy ** 2 + xx ** 2) <= (radius if radius is not None else c) ** 2).float()


@pytest.fixture(scope="session")
def kspace_2coil() -> torch.Tensor:
    return torch.from_numpy(np.load(SAMPLE / "mr_kspace_gre_2coil.npy"))


def psnr_np(x: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    if mask is not None:
        x, ref = x[mask], ref[mask]
    data_range = ref.max() - ref.min()
    return float(10 * np.log10(data_range ** 2 / np.mean((x - ref) ** 2)))
