"""MRI: the Fourier operator, sampling masks, coil maps and k-space files on real 2-coil data."""

import warnings

import numpy as np
import pytest
import torch

from medip.io import load_kspace
from medip.engine.metrics import psnr, ssim
from medip.operators import (Fourier, acs_lines, cartesian_mask, centered_ifft, channels_to_complex,
                             complex_to_channels, estimate_sensitivities, radial_mask,
                             variable_density_mask)

from medip.operators.testing import dot_test


def _crandn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=torch.complex64, generator=g)


@pytest.mark.parametrize("shape", [(16, 12), (6, 8, 10)], ids=["2d", "3d"])
def test_dot_product_single_and_multi_coil(shape):
    mask = cartesian_mask(shape, 3, 0.2).mask
    single = Fourier(shape, mask)
    multi = Fourier(shape, mask, sensitivities=_crandn(4, *shape, seed=2))
    assert dot_test(single, _crandn(2, 1, *shape)) < 1e-5
    assert dot_test(multi, _crandn(1, 1, *shape)) < 1e-5
    assert multi(_crandn(1, 1, *shape)).shape == (1, 4, *shape)


def test_adjoint_of_full_data_is_numpys_centred_ifft(kspace_2coil):
    k = kspace_2coil[None]
    ref = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k.numpy(), axes=(-2, -1)), norm="ortho"),
                          axes=(-2, -1))
    np.testing.assert_allclose(Fourier((160, 160)).H(k).numpy(), ref, atol=1e-5)


def test_channel_helpers_round_trip():
    x = _crandn(2, 1, 5, 5)
    assert complex_to_channels(x).shape == (2, 2, 5, 5)
    torch.testing.assert_close(channels_to_complex(complex_to_channels(x)), x)


def test_masks_hit_their_acceleration_and_are_seeded():
    eq = cartesian_mask((160, 160), 4, 0.08, "equispaced")
    assert 3.6 < eq.acceleration < 4.4 and acs_lines(eq.mask) >= 12
    assert torch.equal(eq.mask[0], eq.mask[-1])  # full read-out lines
    rnd = cartesian_mask((160, 160), 4, 0.08, "random", seed=1)
    assert 3 < rnd.acceleration < 5.5
    assert torch.equal(rnd.mask, cartesian_mask((160, 160), 4, 0.08, "random", seed=1).mask)
    for method in ("gaussian", "poisson"):
        vd = variable_density_mask((4, 48, 48), 5, 0.1, method, seed=0)
        assert vd.mask.shape == (4, 48, 48) and 4 < vd.acceleration < 6.5, method
    assert radial_mask((64, 64), 16).acceleration > 2


def test_real_2coil_zero_filled_is_worse_than_full(kspace_2coil):
    reference = Fourier((160, 160)).pinv(kspace_2coil[None])  # RSS of the full data
    sampled = cartesian_mask((160, 160), 4, 0.08)
    A = Fourier((160, 160), sampled.mask)
    zero_filled = A.pinv(A.forward(centered_ifft(kspace_2coil[None], 2)))
    assert zero_filled.shape == reference.shape == (1, 1, 160, 160)
    ref = reference.abs()
    p, s = psnr(zero_filled.abs(), ref), ssim(zero_filled.abs(), ref)
    print(f"4x equispaced zero-filled: PSNR {p:.2f} dB, SSIM {s:.3f}")
    assert 15 < p < 35 and s < 0.9  # the mask removes real information


def test_coil_maps_from_real_acs(kspace_2coil):
    mask = cartesian_mask((160, 160), 4, 0.08).mask
    maps = estimate_sensitivities(kspace_2coil * mask, acs_lines(mask))
    energy = (maps.sensitivities.abs() ** 2).sum(0)
    assert maps.support.float().mean() > 0.2
    torch.testing.assert_close(energy[maps.support], torch.ones(int(maps.support.sum())))
    assert torch.all(energy[~maps.support] == 0)
    # SENSE with the maps explains the fully sampled data inside the object.
    A = Fourier((160, 160), sensitivities=maps.sensitivities)
    x = A.pinv(kspace_2coil[None])
    residual = (A(x) - kspace_2coil[None]).norm() / kspace_2coil.norm()
    assert residual < 0.3


def test_kspace_files(tmp_path, kspace_2coil):
    np.savez(tmp_path / "k.npz", kspace=kspace_2coil.numpy())
    torch.testing.assert_close(load_kspace(tmp_path / "k.npz"), kspace_2coil)
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "k.h5", "w") as f:
        f["kspace"] = np.stack([kspace_2coil.numpy()] * 3)
    assert load_kspace(tmp_path / "k.h5", slice_index=1).shape == (2, 160, 160)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["image"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="no 'kspace' dataset"):
        load_kspace(tmp_path / "bad.h5")
    np.save(tmp_path / "shifted.npy", np.fft.ifftshift(kspace_2coil.numpy(), axes=(-2, -1)))
    with pytest.warns(UserWarning, match="far from the centre"):
        load_kspace(tmp_path / "shifted.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.save(tmp_path / "good.npy", kspace_2coil.numpy())
        load_kspace(tmp_path / "good.npy")


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not broadcast"):
        Fourier((16, 16), torch.ones(8, 8))
    sens = _crandn(3, 16, 16)
    A = Fourier((16, 16), sensitivities=sens)
    with pytest.raises(ValueError, match="trailing"):
        A.pinv(_crandn(1, 2, 16, 16))  # 2 coils of data for 3 maps
    with pytest.raises(ValueError, match="sensitivities have shape"):
        Fourier((16, 16), sensitivities=_crandn(3, 8, 16))
    with pytest.raises(TypeError, match="must be complex"):
        Fourier((16, 16)).pinv(torch.zeros(1, 1, 16, 16))
    with pytest.raises(TypeError, match="must be complex"):
        Fourier((16, 16)).H(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        Fourier((4, 4)).pinv(torch.full((1, 1, 4, 4), complex("nan")))
    np.save(tmp_path / "real.npy", np.zeros((2, 8, 8), np.float32))
    with pytest.raises(TypeError, match="must be complex"):
        load_kspace(tmp_path / "real.npy")
    np.save(tmp_path / "nan.npy", np.full((2, 8, 8), np.nan, np.complex64))
    with pytest.raises(ValueError, match="NaN"):
        load_kspace(tmp_path / "nan.npy")
