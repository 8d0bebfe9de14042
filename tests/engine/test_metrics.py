"""PSNR and SSIM against scikit-image on the same real arrays, 2D and 3D."""

import nibabel as nib
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medip.engine.metrics import psnr, ssim


@pytest.fixture(scope="module")
def pair(ct_mu_256):
    ref = ct_mu_256[0, 0, 64:192, 64:192].double()
    noisy = ref + 0.002 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(0),
                                      dtype=torch.float64)
    return noisy, ref


def test_psnr_matches_scikit_image(pair):
    noisy, ref = pair
    dr = float(ref.max() - ref.min())
    expected = peak_signal_noise_ratio(ref.numpy(), noisy.numpy(), data_range=dr)
    assert abs(psnr(noisy, ref) - expected) < 1e-9
    assert abs(psnr(noisy, ref, data_range=1.0) - peak_signal_noise_ratio(
        ref.numpy(), noisy.numpy(), data_range=1.0)) < 1e-9


def test_ssim_matches_scikit_image_2d_and_3d(pair, sample_dir):
    noisy, ref = pair
    dr = float(ref.max() - ref.min())
    expected = structural_similarity(ref.numpy(), noisy.numpy(), data_range=dr)
    assert abs(ssim(noisy, ref) - expected) < 1e-3
    vol = torch.tensor(np.asarray(nib.load(sample_dir / "mr_brain_t1_2mm.nii.gz").dataobj,
                                  dtype=np.float64)[30:60, 30:60, 30:60])
    noisy3 = vol + 5 * torch.randn(vol.shape, generator=torch.Generator().manual_seed(1),
                                   dtype=torch.float64)
    dr = float(vol.max() - vol.min())
    expected = structural_similarity(vol.numpy(), noisy3.numpy(), data_range=dr)
    assert abs(ssim(noisy3, vol) - expected) < 1e-3


def test_metric_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(4, 4), torch.zeros(4, 5))
    with pytest.raises(TypeError, match="complex"):
        ssim(torch.zeros(8, 8, dtype=torch.complex64), torch.zeros(8, 8))
