"""MRI raw data: the Siemens TWIX and ISMRMRD samples in sample_data/ (real scans) read with their
geometry, and a written ISMRMRD Cartesian file for readout oversampling, noise scans and the
errors a malformed file gets."""

import sys

import numpy as np
import pytest
import torch

import medip
from medip.errors import InputError, MissingExtra
from medip.io import KSpace, Volume, load_kspace, read_kspace
from medip.operators import centered_fft
from medip.tasks import MRI

ismrmrd = pytest.importorskip("ismrmrd")
xsd = pytest.importorskip("ismrmrd.xsd")


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


def test_twix_sample_is_the_gre_acquisition_with_its_scanner_geometry(sample_dir, kspace_2coil):
    stack = read_kspace(sample_dir / "mr_twix_gre.dat")
    assert stack.cartesian and stack.data.shape == (1, 2, 160, 160)
    # the .npy sample is the same acquisition, stored (coils, lines, readout)
    np.testing.assert_allclose(stack.data[0].numpy(), kspace_2coil.numpy().transpose(0, 2, 1))
    np.testing.assert_allclose(_spacing(stack.affine), [4.0, 1.25, 1.25])  # slice, read, phase
    assert stack.header["format"] == "Siemens TWIX" and stack.noise is None
    assert np.isclose(abs(np.linalg.det(stack.affine[:3, :3])), 4.0 * 1.25 ** 2)


def test_ismrmrd_spiral_sample_keeps_its_trajectory_and_geometry(sample_dir):
    stack = read_kspace(sample_dir / "mr_spiral_8coil.h5")
    assert not stack.cartesian and stack.matrix == (192, 192)
    assert stack.data.shape == (1, 8, 32, 1284) and stack.trajectory.shape == (32, 1284, 2)
    assert float(stack.trajectory.abs().max()) <= 0.5
    np.testing.assert_allclose(_spacing(stack.affine), [5.0, 1.5625, 1.5625], rtol=1e-5)
    assert stack.header["trajectory"] == "spiral"
    with pytest.raises(InputError, match="non-Cartesian k-space has no grid"):
        load_kspace(sample_dir / "mr_spiral_8coil.h5")
    with pytest.raises(InputError, match=r"trajectory has \(16, 1284, 2\) positions"):
        KSpace(stack.data, stack.source, stack.trajectory[::2], stack.matrix)


def _space(matrix, fov):
    return xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=matrix[0], y=matrix[1], z=1),
                                 fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0], y=fov[1], z=fov[2]))


def _write_cartesian(path, kspace: np.ndarray, recon: tuple[int, int], noise=None,
                     noise_dwell: float = 5.0, lines=None):
    """An ISMRMRD file of one Cartesian slice: ``kspace`` (coils, readout, phase) on the encoded
    grid (its readout may be oversampled relative to ``recon``), 1 mm pixels of the recon grid,
    5 us dwell; ``noise`` (coils, n) as a noise acquisition of dwell ``noise_dwell``."""
    coils, readout, phase = kspace.shape
    encoding = xsd.encodingType(
        trajectory=xsd.trajectoryType.CARTESIAN,
        encodedSpace=_space((readout, phase), (readout, phase, 5.0)),
        reconSpace=_space(recon, (recon[0], recon[1], 5.0)),
        encodingLimits=xsd.encodingLimitsType(kspace_encoding_step_1=xsd.limitType(
            minimum=0, maximum=phase - 1, center=phase // 2)))
    header = xsd.ismrmrdHeader(experimentalConditions=xsd.experimentalConditionsType(
        H1resonanceFrequency_Hz=123_000_000), encoding=[encoding])
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(header.toXML())
    if noise is not None:
        acquisition = ismrmrd.Acquisition.from_array(noise.astype(np.complex64))
        acquisition.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        acquisition.sample_time_us = noise_dwell
        dataset.append_acquisition(acquisition)
    for line in range(phase) if lines is None else lines:
        acquisition = ismrmrd.Acquisition.from_array(
            np.ascontiguousarray(kspace[:, :, line]).astype(np.complex64))
        acquisition.idx.kspace_encode_step_1 = line
        acquisition.center_sample = readout // 2
        acquisition.sample_time_us = 5.0
        acquisition.read_dir[:] = (1, 0, 0)
        acquisition.phase_dir[:] = (0, 1, 0)
        acquisition.slice_dir[:] = (0, 0, 1)
        acquisition.position[:] = (0, 0, 10)
        dataset.append_acquisition(acquisition)
    dataset.close()
    return path


def test_ismrmrd_readout_oversampling_is_cropped_in_image_space(tmp_path, kspace_2coil):
    coil_images = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(
        kspace_2coil[:, ::4, ::4], dim=(-2, -1)), norm="ortho"), dim=(-2, -1))  # (2, 40, 40)
    wide = torch.zeros(2, 80, 40, dtype=torch.complex64)
    wide[:, 20:60] = coil_images  # the 2x oversampled readout FOV: empty beyond the object
    path = _write_cartesian(tmp_path / "os.h5", centered_fft(wide, 2).numpy(), (40, 40))
    stack = read_kspace(path)
    assert stack.data.shape == (1, 2, 40, 40)
    np.testing.assert_allclose(stack.data[0].numpy(), centered_fft(coil_images, 2).numpy(),
                               atol=1e-5 * float(coil_images.abs().max()))
    np.testing.assert_allclose(_spacing(stack.affine), [5.0, 1.0, 1.0])
    # LPS (0, 0, 10) is RAS (0, 0, 10): the slice centre sits at the grid centre (20, 20)
    np.testing.assert_allclose(stack.affine @ [0, 20, 20, 1], [0, 0, 10, 1], atol=1e-9)


def test_noise_scan_prewhitens_to_unit_uncorrelated_noise(tmp_path):
    """Pure correlated noise (oversampled readout, noise scan at twice the dwell time, so half the
    noise power): after the reader's crop and dwell scaling and the task's prewhitening, the coils'
    noise covariance is the identity and the task's noise level is 1."""
    gen = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.0], [0.6 + 0.3j, 0.5]])

    def noise(*shape):
        white = (gen.standard_normal((2, *shape)) + 1j * gen.standard_normal((2, *shape)))
        return np.tensordot(mixing, white / np.sqrt(2), axes=1) * 3.0

    path = _write_cartesian(tmp_path / "noise.h5", noise(64, 32), (32, 32),
                            noise=noise(4000) / np.sqrt(2), noise_dwell=10.0)
    task = MRI(read_kspace(path), maps="ratio")
    assert task.sigma == 1.0
    samples = task.y[0].reshape(2, -1)
    covariance = (samples @ samples.conj().T / samples.shape[1]).numpy()
    np.testing.assert_allclose(covariance, np.eye(2), atol=0.12)
    raw = MRI(read_kspace(path), maps="ratio", prewhiten=False)
    assert 0.9 * 3.0 * np.sqrt(0.7) < raw.sigma < 1.1 * 3.0  # between the coils' levels


def test_malformed_raw_files_get_one_clear_error(tmp_path, sample_dir, monkeypatch):
    gen = np.random.default_rng(1)
    kspace = gen.standard_normal((2, 32, 32)) + 0j
    noise_only = _write_cartesian(tmp_path / "noise_only.h5", kspace, (32, 32),
                                  noise=gen.standard_normal((2, 64)) + 0j, lines=[])
    with pytest.raises(InputError, match="no image acquisitions .*noise"):
        read_kspace(noise_only)
    plain = read_kspace(_write_cartesian(tmp_path / "plain.h5", kspace, (32, 32)))
    with pytest.raises(InputError, match="prewhitening needs a noise scan"):
        MRI(plain, prewhiten=True)
    mismatched = read_kspace(_write_cartesian(tmp_path / "three.h5", kspace, (32, 32),
                                              noise=gen.standard_normal((3, 64)) + 0j))
    with pytest.raises(InputError, match="noise scan has 3 coils but the data 2"):
        MRI(mismatched)
    with pytest.raises(InputError, match="coils=5, but the data have 2"):
        MRI(plain, coils=5, maps="ratio")
    fake = tmp_path / "fake.dat"
    fake.write_bytes(b"not a measurement" * 100)
    with pytest.raises(InputError, match="fake.dat: not a readable Siemens TWIX file"):
        read_kspace(fake)
    monkeypatch.setitem(sys.modules, "twixtools", None)
    with pytest.raises(MissingExtra, match=r"pip install 'medip\[mri\]'"):
        read_kspace(sample_dir / "mr_twix_gre.dat")



def test_a_simulated_multi_slice_acquisition_round_trips_through_ismrmrd(tmp_path, sample_dir):
    """medip simulate's raw acquisition of a real brain crop, written as ISMRMRD and read back,
    is the same stack (noise scan and geometry included), and its reconstruction lands on the
    source volume's grid: the output's axes are (phase, readout, slice), so its affine is the
    source affine with the first two columns swapped."""
    from medip.app.simulate import simulate_raw_mri
    from medip.io.mrd import write_ismrmrd

    brain = medip.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    start = np.array([20, 24, 40])
    affine = brain.affine.copy()
    affine[:3, 3] = (brain.affine @ [*start, 1])[:3]
    crop = Volume(brain.array[20:68, 24:84, 40:44], affine, modality="MR")
    stack, how = simulate_raw_mri(crop, coils=4, sigma_fraction=0.005, acceleration=None)
    path = write_ismrmrd(tmp_path / "raw.h5", stack)
    back = read_kspace(path)
    assert back.data.shape == (4, 4, 48, 60) and how["coils"] == 4
    np.testing.assert_allclose(back.data.numpy(), stack.data.numpy(), atol=1e-6)
    np.testing.assert_allclose(back.noise.numpy(), stack.noise.numpy(), atol=1e-6)
    np.testing.assert_allclose(back.affine, stack.affine, atol=1e-4)
    result = medip.reconstruct_volume(back, "mri", method="sense", maps="ratio", progress=False)
    np.testing.assert_allclose(result.volume.affine, crop.affine[:, [1, 0, 2, 3]], atol=1e-4)
    image, truth = result.volume.array, crop.array.transpose(1, 0, 2)
    assert np.corrcoef(image.ravel(), truth.ravel())[0, 1] > 0.99
    with pytest.raises(FileExistsError, match="raw.h5 exists"):
        write_ismrmrd(path, stack)
