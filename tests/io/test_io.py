"""Medical I/O on the real scans: geometry through round trips, derived series, and bad input."""

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

import medip
from medip.io import DicomError, Volume, save_preview
from medip.io import dicom_read
from medip.io.volume import LPS_TO_RAS


@pytest.fixture
def series(tmp_path, sample_dir):
    """A writable copy of the real 5-slice CT series."""
    return shutil.copytree(sample_dir / "ct_series_tiny", tmp_path / "series")


def ipp_ras(path):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return (LPS_TO_RAS @ [*map(float, ds.ImagePositionPatient), 1])[:3]


def test_series_to_nifti_to_dicom_round_trip(series, tmp_path):
    vol = medip.load(series)
    assert vol.shape == (16, 16, 5) and vol.units == "HU" and vol.spacing[2] == pytest.approx(2.5)
    files = sorted(series.iterdir())
    # slices come sorted by position along the normal, not by file name or InstanceNumber
    positions = [ipp_ras(f)[2] for f in vol.meta["dicom_files"]]
    assert positions == sorted(positions) and len(files) == 5
    nifti = nib.load(medip.save(vol, tmp_path / "ct.nii.gz"))
    assert int(nifti.header["sform_code"]) == 1 and int(nifti.header["qform_code"]) == 1
    for k, f in enumerate(vol.meta["dicom_files"]):
        np.testing.assert_allclose(nifti.affine @ [0, 0, k, 1], [*ipp_ras(f), 1], atol=0.01)
        raw = pydicom.dcmread(f)
        hu = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
        np.testing.assert_array_equal(nifti.get_fdata()[:, :, k], hu.T)
    out = medip.save(medip.load(tmp_path / "ct.nii.gz"), tmp_path / "derived", format="dicom",
                     like=vol, description="medip test")
    back = medip.load(out)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    np.testing.assert_allclose(back.array, vol.array, atol=0.5)
    first, template = pydicom.dcmread(sorted(out.iterdir())[0]), vol.meta["dicom_template"]
    assert first.SeriesInstanceUID != template.SeriesInstanceUID
    assert first.StudyInstanceUID == template.StudyInstanceUID
    assert first.PatientID == template.PatientID and list(first.ImageType) == ["DERIVED", "SECONDARY"]
    assert first.SeriesDescription == "medip test" and first.pixel_array.dtype == np.int16


def test_brain_nifti_to_dicom_keeps_geometry_and_values(sample_dir, tmp_path):
    brain = medip.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    brain.array += 0.25  # non-integer values: a rescale slope below 1 keeps them
    out = medip.save(brain, tmp_path / "brain", format="dicom")
    files = sorted(out.iterdir())
    assert len(files) == 91
    ds = pydicom.dcmread(files[0])
    assert float(ds.RescaleSlope) < 1 and ds.Rows == 109 and ds.Columns == 91
    back = medip.load(out)
    # DICOM stacks slices along the orientation's normal, so k may come back reversed: compare
    # every voxel at the same world position.
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in back.shape], indexing="ij"), -1)
    src = np.round((back.world(ijk.reshape(-1, 3)) - brain.affine[:3, 3])
                   @ np.linalg.inv(brain.affine[:3, :3]).T).astype(int)
    np.testing.assert_allclose(back.world(ijk.reshape(-1, 3)), brain.world(src), atol=1e-3)
    np.testing.assert_allclose(back.array.reshape(-1), brain.array[tuple(src.T)],
                               atol=float(ds.RescaleSlope))


def test_head_ct_slice_in_hu_with_outside_fov_as_air(sample_dir):
    ct = medip.load(sample_dir / "ct_head_slice.dcm")
    assert ct.shape == (512, 512, 1) and ct.modality == "CT" and ct.units == "HU"
    assert ct.array.min() == -1024 and ct.meta["outside_fov_voxels"] > 0
    air = ct.array[96:160, 64:96, 0]  # columns 96-160, rows 64-96: inside the FOV, above the head
    assert -1050 < np.median(air) < -950


def test_nifti_4d_needs_a_frame_and_nrrd_npy_png_round_trips(sample_dir, tmp_path):
    with pytest.raises(ValueError, match=r"4D with 2 volumes.*frame=N"):
        medip.load(sample_dir / "mr_epi_example4d.nii.gz")
    epi = medip.load(sample_dir / "mr_epi_example4d.nii.gz", frame=1)
    raw = nib.load(sample_dir / "mr_epi_example4d.nii.gz")
    np.testing.assert_array_equal(epi.array, raw.get_fdata()[..., 1])
    np.testing.assert_allclose(epi.affine, raw.affine)
    for name in ("epi.nrrd", "epi.npy"):
        back = medip.load(medip.save(epi, tmp_path / name))
        np.testing.assert_array_equal(back.array, epi.array)
        if name.endswith("nrrd"):
            np.testing.assert_allclose(back.affine, epi.affine, atol=1e-6)
    png = medip.save(Volume(np.arange(12.0).reshape(3, 4)), tmp_path / "p.png")
    picture = medip.load(png)
    assert picture.shape == (3, 4, 1) and np.all(np.diff(picture.array[:, 0, 0]) > 0)


def test_preview_mosaic_side_by_side(sample_dir, tmp_path):
    from PIL import Image

    brain = medip.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    path = save_preview([brain, brain], tmp_path / "m.png", tiles=9)
    assert Image.open(path).size == (2 * 3 * 91, 3 * 109)


def test_rle_and_jpeg2000_compressed_files(series, tmp_path, sample_dir, monkeypatch):
    plain = medip.load(series)
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        ds.compress(RLELossless)  # pydicom's own encoder and decoder: works out of the box
        ds.save_as(f)
    np.testing.assert_array_equal(medip.load(series).array, plain.array)
    head = pydicom.dcmread(sample_dir / "ct_head_slice.dcm")
    head.compress(JPEG2000Lossless)
    head.save_as(tmp_path / "j2k.dcm")
    np.testing.assert_array_equal(medip.load(tmp_path / "j2k.dcm").array,
                                  medip.load(sample_dir / "ct_head_slice.dcm").array)
    monkeypatch.setattr(dicom_read, "decoder_available", lambda syntax: False)  # no pylibjpeg
    with pytest.raises(DicomError, match=r"j2k.dcm: pixel data is compressed as JPEG 2000 Image "
                                         r"Compression \(Lossless Only\).*pip install 'medip\[jpeg\]'"):
        medip.load(tmp_path / "j2k.dcm")


def test_enhanced_multiframe_uses_per_frame_geometry(series, tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    plain = medip.load(series)
    frames = [pydicom.dcmread(f) for f in plain.meta["dicom_files"]][::-1]  # stored reversed
    ds = frames[0]
    ds.NumberOfFrames = len(frames)
    ds.PixelData = b"".join(f.PixelData for f in frames)
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = ds.ImageOrientationPatient
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = ds.PixelSpacing
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for f in frames:
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = f.ImagePositionPatient
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    del ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing
    ds.save_as(tmp_path / "enhanced.dcm")
    multi = medip.load(tmp_path / "enhanced.dcm")
    np.testing.assert_allclose(multi.affine, plain.affine, atol=1e-6)
    np.testing.assert_array_equal(multi.array, plain.array)


def test_monochrome1_is_inverted(series):
    plain = medip.load(series)
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        ds.PhotometricInterpretation, ds.Modality = "MONOCHROME1", "MR"
        ds.save_as(f)
    inverted = medip.load(series).array
    np.testing.assert_allclose(inverted + plain.array, (inverted + plain.array).flat[0])


def test_spacing_problems_warn_or_fail(series, tmp_path):
    files = sorted(series.iterdir())
    middle = medip.load(series).meta["dicom_files"][2]
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(middle, moved / "gone.dcm")
    with pytest.warns(UserWarning, match=r"missing slice\(s\) between positions"):
        medip.load(series)
    dup = pydicom.dcmread(files[0])
    dup.SOPInstanceUID = generate_uid()
    dup.save_as(series / "dup.dcm")
    with pytest.raises(DicomError, match="dup.dcm|duplicate slice position"):
        medip.load(series)


def test_bad_folders_and_files_fail_with_one_clear_line(series, tmp_path, sample_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DicomError, match="no DICOM image series found"):
        medip.load(empty)
    text = tmp_path / "text"
    text.mkdir()
    (text / "notes.txt").write_text("not a scan")
    with pytest.raises(DicomError, match=r"1 file\(s\), none of them DICOM"):
        medip.load(text)
    with pytest.raises(FileNotFoundError, match="no such file"):
        medip.load(tmp_path / "missing")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (series / "2062").read_bytes()
    (truncated / "cut.dcm").write_bytes(data[: len(data) - 200])
    with pytest.raises(DicomError, match=r"cut.dcm: cannot decode the pixel data.*truncated"):
        medip.load(truncated)
    other = pydicom.dcmread(series / "2062")
    other.SeriesInstanceUID, other.SeriesDescription = generate_uid(), "other"
    other.save_as(series / "other.dcm")
    with pytest.raises(DicomError, match=r"holds 2 image series: .*'other'.*series="):
        medip.load(series)
    assert medip.load(series, series=str(other.SeriesInstanceUID)).shape == (16, 16, 1)
    vol = medip.load(series, series=medip.load(series / "2062").meta["series_uid"])
    with pytest.raises(ValueError, match="inside the input series' folder"):
        medip.save(vol, series / "out.nii.gz")
    medip.save(vol, tmp_path / "out.nii.gz")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        medip.save(vol, tmp_path / "out.nii.gz")
    with pytest.raises(ValueError, match="cannot tell the output format"):
        medip.save(vol, tmp_path / "out.xyz")


def test_non_image_objects_are_skipped(series):
    sr = pydicom.dcmread(series / "2062", stop_before_pixels=True)
    for tag in ("Rows", "Columns"):
        delattr(sr, tag)
    sr.Modality, sr.SOPInstanceUID = "SR", generate_uid()
    sr.save_as(series / "report.dcm")
    vol = medip.load(series)
    assert vol.shape[2] == 5 and any("non-image SR" in note for note in vol.meta["notes"])


def test_outputs_get_normal_permissions(series, tmp_path):
    from medip.io.atomic import current_umask

    vol = medip.load(series)
    expected = 0o666 & ~current_umask()
    assert medip.save(vol, tmp_path / "v.nii.gz").stat().st_mode & 0o777 == expected
    folder = medip.save(vol, tmp_path / "dicom", format="dicom")
    assert folder.stat().st_mode & 0o777 == 0o777 & ~current_umask()


def test_pixel_padding_keeps_its_background_and_survives_a_dicom_round_trip(series, tmp_path):
    """An MR-style series padded with 0 (real values 1 and up) keeps a background of 0, and a
    derived series marks the same voxels as padding again."""
    for path in series.iterdir():
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.int32)
        pixels = (pixels - pixels.min() + 1).astype(np.uint16)  # real data: 1 and above
        pixels[:, :3] = 0  # three padded columns
        ds.PixelRepresentation, ds.Modality = 0, "MR"
        ds.RescaleSlope, ds.RescaleIntercept, ds.PixelPaddingValue = 1, 0, 0
        ds.PixelData = pixels.tobytes()
        ds.save_as(path)
    vol = medip.load(series)
    assert (vol.array[:3] == 0).all() and vol.array[3:].min() >= 1  # not filled with 1
    assert vol.meta["padding_mask"][:3].all() and not vol.meta["padding_mask"][3:].any()
    result = vol.with_array(vol.array + 7.5)  # a restoration changes every voxel
    medip.save(result, tmp_path / "derived", format="dicom", like=vol)
    derived = medip.load(tmp_path / "derived")
    first = pydicom.dcmread(sorted((tmp_path / "derived").iterdir())[0])
    assert "PixelPaddingValue" in first
    step = float(first.RescaleSlope)  # one int16 storage step
    np.testing.assert_allclose(derived.array[:3], 0, atol=step)
    np.testing.assert_allclose(derived.array[3:], result.array[3:], atol=step)
    assert derived.meta["padding_mask"][:3].all()
