"""ISMRMRD (MRD v1) HDF5 raw data: image acquisitions, trajectories, noise scans and geometry.

Read with the ``ismrmrd`` package (the ``mri`` extra), read-only. Cartesian acquisitions are
placed on the encoded grid by their encoding counters (the readout's ``center_sample`` and the
phase encodes' ``center`` at the grid centre), averaged over averages, and cropped in image
space to the reconstruction matrix (which removes readout oversampling). Non-Cartesian
acquisitions keep their trajectory (one shot per acquisition). Only the first contrast,
repetition, phase and set are read; a file holding more says so with a warning. Noise
acquisitions are returned as the noise scan, scaled to the imaging dwell time.
:func:`write_ismrmrd` writes a Cartesian multi-slice stack (``medip simulate mri`` to ``.h5``).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, MissingExtra
from .acquisition import KSpace, stack_affine


def _ismrmrd():
    try:
        import ismrmrd
    except ImportError:
        raise MissingExtra("reading ISMRMRD raw data needs the ismrmrd package; install it with "
                           "pip install 'medip[mri]'") from None
    return ismrmrd


def is_ismrmrd(path: Path) -> bool:
    """Whether an HDF5 file is ISMRMRD (a group holding ``data`` and ``xml``)."""
    try:
        import h5py
    except ImportError:
        raise MissingExtra(f"{path}: reading HDF5 k-space needs h5py; install it with "
                           f"pip install 'medip[mri]'") from None
    with h5py.File(path, "r") as f:
        return any(isinstance(f[name], h5py.Group) and "xml" in f[name] for name in f)


_SKIP = ("ACQ_IS_NAVIGATION_DATA", "ACQ_IS_PHASECORR_DATA", "ACQ_IS_PARALLEL_CALIBRATION",
         "ACQ_IS_DUMMYSCAN_DATA", "ACQ_IS_RTFEEDBACK_DATA", "ACQ_IS_HPFEEDBACK_DATA",
         "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA", "ACQ_IS_PHASE_STABILIZATION",
         "ACQ_IS_PHASE_STABILIZATION_REFERENCE")


#: The readout dwell time :func:`write_ismrmrd` records (image and noise acquisitions alike).
DWELL_US = 5.0


def read_ismrmrd(path: str | Path, dataset: str | None = None) -> KSpace:
    """Every slice of the first encoding of an ISMRMRD file as a :class:`KSpace`."""
    ismrmrd = _ismrmrd()
    path = Path(path)
    f = ismrmrd.File(str(path), "r")
    try:
        names = [n for n in f.keys()]
        name = dataset or names[0]
        container = f[name]
        header = container.header
        acquisitions = list(container.acquisitions) if container.has_acquisitions() else []
    finally:
        f.close()
    skip = [getattr(ismrmrd, flag) for flag in _SKIP]
    noise = [a for a in acquisitions if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    images = [a for a in acquisitions if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
              and not any(a.is_flag_set(flag) for flag in skip)]
    if not images:
        raise InputError(f"{path}: no image acquisitions (found {len(acquisitions)} "
                         f"acquisitions, {len(noise)} of them noise); is this a calibration-only "
                         f"or noise-only file?")
    images = _first_of_each(images, path)
    encoding = header.encoding[0]
    trajectory = str(encoding.trajectory.value if hasattr(encoding.trajectory, "value")
                     else encoding.trajectory)
    recon = encoding.reconSpace
    matrix = (int(recon.matrixSize.x), int(recon.matrixSize.y), int(recon.matrixSize.z))
    fov = (float(recon.fieldOfView_mm.x), float(recon.fieldOfView_mm.y),
           float(recon.fieldOfView_mm.z))
    three_d = matrix[2] > 1
    by_slice: dict[int, list] = defaultdict(list)
    for a in images:
        by_slice[int(a.idx.slice)].append(a)
    order = sorted(by_slice, key=lambda s: float(np.dot(by_slice[s][0].position[:],
                                                        by_slice[s][0].slice_dir[:])))
    if trajectory == "cartesian":
        data = torch.stack([_cartesian(by_slice[s], encoding, path) for s in order])
        traj, image_matrix = None, tuple(data.shape[2:])
    else:
        if three_d:
            raise InputError(f"{path}: 3D non-Cartesian ({trajectory}) data are not supported; "
                             f"reconstruct stack-of-stars as slices after an FFT along kz")
        shots = [_shots(by_slice[s], path) for s in order]
        data = torch.stack([k for k, _ in shots])
        traj, image_matrix = shots[0][1], matrix[:2]
    first = [by_slice[s][0] for s in order]
    spacing = (fov[0] / matrix[0], fov[1] / matrix[1],
               fov[2] / matrix[2] if three_d else float(encoding.encodedSpace.fieldOfView_mm.z))
    affine = stack_affine(np.array([a.position[:] for a in first]), np.array(first[0].read_dir[:]),
                          np.array(first[0].phase_dir[:]), np.array(first[0].slice_dir[:]),
                          spacing, matrix[:2])
    if three_d:  # one 3D entry indexed (readout, phase, partition)
        affine = affine[:, [1, 2, 0, 3]]
        affine[:3, 2] = affine[:3, 2] / np.linalg.norm(affine[:3, 2]) * spacing[2]
    info = {"format": "ISMRMRD", "trajectory": trajectory, "matrix": list(image_matrix),
            "fov_mm": list(fov), "coils": int(data.shape[1]), "slices": len(order),
            "protocol": getattr(header.measurementInformation, "protocolName", None)
            if header.measurementInformation else None}
    return KSpace(data, path, traj, image_matrix, affine, _noise(noise, images[0]), info)


def _first_of_each(images: list, path: Path) -> list:
    """The acquisitions of the first contrast, repetition, phase and set (warning if more)."""
    def counters(a):
        return (int(a.idx.contrast), int(a.idx.repetition), int(a.idx.phase), int(a.idx.set))

    first = min(counters(a) for a in images)
    kept = [a for a in images if counters(a) == first]
    if len(kept) < len(images):
        warnings.warn(f"{path}: holds several contrasts/repetitions/phases/sets; reading only "
                      f"the first ({len(kept)} of {len(images)} acquisitions)", stacklevel=3)
    return kept


def _cartesian(acquisitions: list, encoding, path: Path) -> torch.Tensor:
    """One slice (or 3D volume) of Cartesian acquisitions on the centred reconstruction grid."""
    from ..operators import centered_fft, centered_ifft

    encoded = encoding.encodedSpace.matrixSize
    limits = encoding.encodingLimits
    shape = (int(encoded.x), int(encoded.y), int(encoded.z))
    coils = int(acquisitions[0].active_channels)
    grid = np.zeros((coils, *shape), np.complex64)
    hits = np.zeros(shape[1:], np.int32)
    centre_1 = _centre(limits.kspace_encoding_step_1, shape[1])
    centre_2 = _centre(limits.kspace_encoding_step_2, shape[2])
    for a in acquisitions:
        if a.active_channels != coils:
            raise InputError(f"{path}: acquisitions with {a.active_channels} and {coils} coils")
        line = int(a.idx.kspace_encode_step_1) - centre_1 + shape[1] // 2
        part = int(a.idx.kspace_encode_step_2) - centre_2 + shape[2] // 2
        start = shape[0] // 2 - int(a.center_sample)
        samples = a.data[:, :]
        stop = start + samples.shape[1]
        if not (0 <= line < shape[1] and 0 <= part < shape[2] and 0 <= start and stop <= shape[0]):
            raise InputError(f"{path}: an acquisition (line {a.idx.kspace_encode_step_1}) lies "
                             f"outside the encoded matrix {shape}; the header's encoding limits "
                             f"disagree with the data")
        grid[:, start:stop, line, part] += samples
        hits[line, part] += 1
    grid /= np.maximum(hits, 1)
    recon = encoding.reconSpace.matrixSize
    target = (int(recon.x), int(recon.y), max(int(recon.z), 1))
    kspace = torch.from_numpy(grid)
    if target != shape:  # crop the field of view in image space (readout oversampling); the
        # orthonormal transforms keep the noise per sample, so the noise scan still applies
        ndim = 3 if shape[2] > 1 else 2
        image = centered_ifft(kspace if ndim == 3 else kspace[..., 0], ndim)
        image = image[(slice(None), *(slice((n - t) // 2, (n - t) // 2 + t)
                                      for n, t in zip(shape[:ndim], target[:ndim])))]
        kspace = centered_fft(image, ndim) if ndim == 3 else centered_fft(image, 2)[..., None]
    return kspace[..., 0] if target[2] == 1 else kspace


def _centre(limit, size: int) -> int:
    return int(limit.center) if limit is not None and limit.maximum else size // 2


def _shots(acquisitions: list, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One slice's non-Cartesian shots: k-space ``(coils, shots, samples)`` and trajectory."""
    acquisitions = sorted(acquisitions, key=lambda a: int(a.idx.kspace_encode_step_1))
    lengths = {(int(a.number_of_samples) - a.discard_pre - a.discard_post) for a in acquisitions}
    if len(lengths) != 1:
        raise InputError(f"{path}: shots of different lengths {sorted(lengths)}; medip needs "
                         f"equal shots")
    kspace, trajectory = [], []
    for a in acquisitions:
        keep = slice(a.discard_pre, int(a.number_of_samples) - a.discard_post)
        if a.trajectory_dimensions < 2 or a.traj.shape[0] != a.number_of_samples:
            raise InputError(f"{path}: a non-Cartesian acquisition's trajectory has shape "
                             f"{a.traj.shape} for {a.number_of_samples} samples; it must be "
                             f"(samples, >= 2)")
        kspace.append(a.data[:, keep])
        trajectory.append(a.traj[keep, :2])
    data = torch.from_numpy(np.stack(kspace, axis=1).astype(np.complex64))
    traj = torch.from_numpy(np.stack(trajectory).astype(np.float32))
    if float(traj.abs().max()) > 0.5 + 1e-3:
        raise InputError(f"{path}: the trajectory reaches {float(traj.abs().max()):.3g}; medip "
                         f"reads ISMRMRD trajectories normalised to [-0.5, 0.5] cycles/pixel")
    return data, traj


def _noise(noise: list, image) -> torch.Tensor | None:
    """The noise scan ``(coils, n)``, scaled to the imaging dwell time (noise power is
    proportional to bandwidth, the inverse of the dwell time)."""
    if not noise:
        return None
    samples = np.concatenate([a.data[:, :] for a in noise], axis=1)
    ratio = float(noise[0].sample_time_us) / float(image.sample_time_us or 1.0)
    return torch.from_numpy((samples * np.sqrt(ratio)).astype(np.complex64))


def write_ismrmrd(path: str | Path, stack: KSpace, overwrite: bool = False) -> Path:
    """Write a Cartesian multi-slice :class:`KSpace` (``(slices, coils, readout, phase)``) as an
    ISMRMRD file: one acquisition per measured (nonzero) phase-encode line, its noise scan as a
    noise acquisition, and the geometry of ``stack.affine`` (indices ``(slice, readout, phase)``
    to RAS+ mm) as each acquisition's position and directions and the header's field of view.
    What :func:`read_ismrmrd` reads back is the same stack (tested)."""
    from .atomic import atomic_write
    from .volume import LPS_TO_RAS

    ismrmrd = _ismrmrd()
    import ismrmrd.xsd as xsd

    if not stack.cartesian or stack.data.ndim != 4:
        raise InputError(f"{path}: write_ismrmrd writes Cartesian 2D slices (slices, coils, "
                         f"readout, phase), got {tuple(stack.data.shape)}")
    slices, coils, readout, phase = stack.data.shape
    affine = np.eye(4) if stack.affine is None else LPS_TO_RAS @ stack.affine  # to LPS
    columns = affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)  # (slice, readout, phase)
    directions = columns / spacing
    fov = (float(spacing[1] * readout), float(spacing[2] * phase), float(spacing[0]))

    def space():
        return xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=readout, y=phase, z=1),
            fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0], y=fov[1], z=fov[2]))

    limits = xsd.encodingLimitsType(
        kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=phase - 1, center=phase // 2),
        slice=xsd.limitType(minimum=0, maximum=slices - 1, center=0))
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        encoding=[xsd.encodingType(trajectory=xsd.trajectoryType.CARTESIAN, encodedSpace=space(),
                                   reconSpace=space(), encodingLimits=limits)])
    data = stack.data.numpy()

    def write(tmp: Path) -> None:
        dataset = ismrmrd.Dataset(str(tmp), "dataset", create_if_needed=True)
        try:
            dataset.write_xml_header(header.toXML())
            if stack.noise is not None:
                noise = ismrmrd.Acquisition.from_array(stack.noise.numpy().astype(np.complex64))
                noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
                noise.sample_time_us = DWELL_US
                dataset.append_acquisition(noise)
            for s in range(slices):
                centre = affine @ np.array([s, readout // 2, phase // 2, 1.0])
                for line in np.flatnonzero(np.abs(data[s]).sum((0, 1)) > 0):
                    acquisition = ismrmrd.Acquisition.from_array(
                        np.ascontiguousarray(data[s, :, :, line]))
                    acquisition.idx.kspace_encode_step_1 = int(line)
                    acquisition.idx.slice = s
                    acquisition.center_sample = readout // 2
                    acquisition.sample_time_us = DWELL_US
                    acquisition.position[:] = centre[:3]
                    acquisition.read_dir[:] = directions[:, 1]
                    acquisition.phase_dir[:] = directions[:, 2]
                    acquisition.slice_dir[:] = directions[:, 0]
                    dataset.append_acquisition(acquisition)
        finally:
            dataset.close()

    return atomic_write(path, write, overwrite)

