"""CT and MRI as tasks of the library: volumes from sinogram and k-space stacks through the one
volume driver, with geometry and units, on the real scans in sample_data/."""

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import medip
from medip.app.simulate import simulate_ct
from medip.engine.metrics import psnr
from medip.io import KSpace, Volume, read_kspace
from medip.operators import cartesian_mask
from medip.tasks import CT, MRI, make_task


@pytest.fixture(scope="module")
def head_ct(ct_hu):
    """The real head CT slice at 64x64 as a one-slice volume in HU (1.6 mm pixels)."""
    hu = torch.tensor(ct_hu, dtype=torch.float32).clamp(min=-1000)[None, None]
    small = F.interpolate(hu, size=(64, 64), mode="area")[0, 0].numpy()
    return Volume(np.ascontiguousarray(small.T[:, :, None]), np.diag([3.6, 3.6, 5.0, 1.0]),
                  modality="CT", units="HU")


def test_ct_volume_from_a_sinogram_stack_keeps_the_scan_geometry(sample_dir):
    series = medip.load(sample_dir / "ct_series_tiny")
    sinogram = simulate_ct(series, angles=24, photons=None)
    assert sinogram.data.shape[0] == series.shape[2]
    res = medip.reconstruct_volume(sinogram, "ct", like=series, max_steps=20, warm_steps=10,
                                   progress=False)
    assert res.volume.shape == series.shape and res.volume.units == "HU"
    np.testing.assert_allclose(res.volume.affine, series.affine)
    assert res.variance.units == "HU^2" and len(res.stop_steps) == series.shape[2]
    whole = medip.reconstruct_volume(sinogram, "ct", "3d", like=series, max_steps=10,
                                     progress=False)
    assert whole.volume.shape == series.shape and len(whole.stop_steps) == 1
    assert res.generator == whole.generator == medip.defaults.PRESET


def test_sparse_view_ct_dip_beats_fbp_on_the_real_head_slice(head_ct):
    sinogram = simulate_ct(head_ct, angles=16, photons=1e5, seed=0)  # sparse views: FBP streaks
    task = make_task("ct", sinogram, like=head_ct)
    res = medip.reconstruct_volume(task, stopper=400, progress=False)
    clean = torch.from_numpy(head_ct.array)
    fbp, dip = (psnr(torch.from_numpy(v.array), clean) for v in (res.measured, res.volume))
    assert dip > fbp + 1.0, (dip, fbp)
    np.testing.assert_allclose(res.volume.affine, head_ct.affine)


def test_ct_refuses_what_does_not_apply(head_ct):
    sinogram = simulate_ct(head_ct, angles=12, photons=None)
    task = CT(sinogram)
    for options, message in (({"mode": "patches"}, "voxel-wise task"),
                             ({"slab": 3}, "slab=3 needs a voxel-wise task"),
                             ({"axis": 1}, "axis=1 does not apply"),
                             ({"noise_free": True}, "not exact")):
        with pytest.raises(ValueError, match=message):
            medip.reconstruct_volume(task, max_steps=2, progress=False, **options)
    with pytest.raises(ValueError, match="takes no option mask"):
        medip.reconstruct_volume(sinogram, "ct", mask=np.ones(3))


def _fastmri_file(path, kspace: torch.Tensor, slices: int):
    """A fastMRI-layout HDF5 file: ``kspace`` (slices, coils, H, W)."""
    with h5py.File(path, "w") as f:
        f["kspace"] = np.stack([kspace.numpy()] * slices)
    return path


def test_mri_volume_from_every_slice_of_an_hdf5_file(tmp_path, kspace_2coil):
    stack = read_kspace(_fastmri_file(tmp_path / "two.h5", kspace_2coil, 2))
    assert isinstance(stack, KSpace) and stack.data.shape == (2, *kspace_2coil.shape)
    res = medip.reconstruct_volume(stack, "mri", acceleration=4, stopper=30, warm_steps=10,
                                   progress=False)
    assert res.volume.shape == (160, 160, 2) and res.volume.modality == "MR"
    assert res.steps_run == [10, 30]  # the middle slice cold, its neighbour warm-started
    assert np.isfinite(res.volume.array).all() and (res.volume.array >= 0).all()  # magnitude
    # the measured volume is the zero-filled root-sum-of-squares, as numpy computes it
    sampled = cartesian_mask((160, 160), 4, seed=0).mask.numpy()  # the task's own mask
    coils = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace_2coil.numpy() * sampled,
                                                          axes=(-2, -1)), norm="ortho"),
                            axes=(-2, -1))
    rss = np.sqrt((np.abs(coils) ** 2).sum(0))
    np.testing.assert_allclose(res.measured.array[..., 1], rss.T, rtol=1e-4, atol=1e-4 * rss.max())
    with pytest.raises(ValueError, match="2D k-space slices reconstruct with mode='slices'"):
        medip.reconstruct_volume(stack, "mri", "3d", acceleration=4, max_steps=2)


def test_mri_bad_input_is_one_clear_error(kspace_2coil):
    with pytest.raises(ValueError, match="complex k-space"):
        MRI(kspace_2coil.abs())
    with pytest.raises(ValueError, match="the sampling mask has shape"):
        MRI(kspace_2coil, mask=np.ones((3, 3)))


def test_ramp_preconditioned_ct_fits_learn_detail_faster(head_ct):
    """fit's default data term for Radon is the square-root-ramp weighted residual: at an equal
    step count it is far ahead of the plain residual, which is still blurred."""
    from medip.operators import Radon, gaussian

    mu = medip.tasks.hu_to_mu(torch.from_numpy(head_ct.array[:, :, 0].T.copy()))[None, None]
    radon = Radon((64, 64), 30)
    sino = radon(mu)
    y = gaussian(sino, 0.01 * float(sino.max()), seed=0)
    weighted, plain = (psnr(medip.fit(radon, y, stopper=200, precondition=p).image, mu)
                       for p in (True, False))
    assert weighted > plain + 3, (weighted, plain)
