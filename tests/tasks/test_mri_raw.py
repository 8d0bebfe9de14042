"""MRI from raw data through the volume driver: non-Cartesian (the real spiral sample) with the
NUFFT, the classical methods users compare with (CG-SENSE, TV compressed sensing), complex output
and the scanner's geometry in the written NIfTI."""

import nibabel as nib
import numpy as np
import pytest
import torch

import medip
from medip.engine.solvers import FLOOR_STALL, conjugate_gradient
from medip.io import Volume, read_kspace
from medip.tasks import MRI

pytest.importorskip("finufft")
pytest.importorskip("ismrmrd")


def _psnr(image: np.ndarray, reference: np.ndarray) -> float:
    scale = float(image.ravel() @ reference.ravel() / (image.ravel() @ image.ravel()))
    error = np.mean((scale * image - reference) ** 2)  # after the best global scale
    return float(10 * np.log10(reference.max() ** 2 / error))


@pytest.fixture(scope="module")
def spiral(sample_dir):
    return read_kspace(sample_dir / "mr_spiral_8coil.h5")


def test_cg_sense_beats_gridding_on_undersampled_real_spiral_data(spiral):
    """Reference: the least-squares image of all 32 interleaves; at 2x (16 interleaves) CG-SENSE,
    stopped by its own rule, is closer to it than the density-compensated gridding of the same
    samples."""
    full = MRI(spiral, coils=4).problem((slice(0, 1),), 0)
    least_squares = conjugate_gradient(full.A, full.y, None, stall=FLOOR_STALL)[0]
    reference = full.to_image(least_squares).numpy()[0].T
    half = MRI(spiral, acceleration=2, coils=4)
    sense = medip.reconstruct_volume(half, method="sense", progress=False)
    gridded = _psnr(half.measured.array[..., 0], reference)
    assert _psnr(sense.volume.array[..., 0], reference) > gridded + 1.0  # measured +1.9 dB
    assert sense.volume.shape == (192, 192, 1) and 2 <= sense.stop_steps[0] < 30


def test_tv_compressed_sensing_beats_zero_filling_on_the_real_gre_scan(kspace_2coil):
    rss = np.sqrt((np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(
        kspace_2coil.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1))) ** 2).sum(0))
    task = MRI(kspace_2coil, acceleration=4)
    tv = medip.reconstruct_volume(task, method="tv", progress=False)
    zero_filled = _psnr(task.measured.array[..., 0].T, rss)
    assert _psnr(tv.volume.array[..., 0].T, rss) > zero_filled + 1.5
    with pytest.raises(ValueError, match="method='bm3d' does not apply to 'mri'"):
        medip.reconstruct_volume(task, method="bm3d")


def test_spiral_dip_writes_complex_nifti_with_the_scanner_geometry(spiral, tmp_path):
    result = medip.reconstruct_volume(spiral, "mri", coils=2, part="complex", max_steps=8,
                                      warm_steps=4, progress=False)
    assert result.volume.array.dtype == np.complex64 and result.volume.shape == (192, 192, 1)
    path = tmp_path / "spiral.nii.gz"
    medip.save(result.volume, path)
    image = nib.load(path)
    assert image.get_data_dtype() == np.complex64
    np.testing.assert_allclose(image.header.get_zooms(), (1.5625, 1.5625, 5.0), rtol=1e-5)
    np.testing.assert_allclose(image.affine, result.volume.affine, atol=1e-4)
    with pytest.raises(ValueError, match="complex"):
        medip.save(result.volume, tmp_path / "spiral.png")


def test_non_cartesian_refuses_a_mask(spiral):
    with pytest.raises(ValueError, match="undersample a trajectory with acceleration"):
        MRI(spiral, mask=torch.ones(32, 1284))


def test_auto_maps_fall_back_to_the_ratio_method_when_espirit_is_underdetermined(sample_dir):
    """8 simulated coils with the default 8 calibration lines (109 phase encodes, 4x): ESPIRiT's
    calibration matrix is underdetermined, and the automatic choice (ratio maps) gives the far
    better CG-SENSE image."""
    from medip.app.simulate import simulate_raw_mri

    brain = medip.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    source = Volume(brain.array[:, :, 36:37], brain.affine, modality="MR")
    stack, _ = simulate_raw_mri(source, sigma_fraction=0.02, acceleration=4)
    truth = source.array.transpose(1, 0, 2)[..., 0]
    scores = {maps: _psnr(medip.reconstruct_volume(MRI(stack, maps=maps), method="sense",
                                                   progress=False).volume.array[..., 0], truth)
              for maps in ("auto", "espirit")}
    assert scores["auto"] > scores["espirit"] + 3.0
