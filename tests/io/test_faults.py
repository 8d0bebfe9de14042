"""Faults a trusted tool survives: a full disk, a read-only folder, an interrupt during a save,
corrupt and gappy input. Each is one clear error (or warning) and never a half-written output."""

import errno
import gzip
import os
import shutil
import warnings

import numpy as np
import pydicom
import pytest

import medip
from medip.errors import OutputError
from medip.io import Volume


@pytest.fixture
def volume():
    return Volume(np.random.default_rng(0).random((8, 8, 4)).astype(np.float32))


def test_a_full_disk_is_one_error_and_leaves_nothing(volume, tmp_path, monkeypatch):
    import nibabel

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nibabel, "save", full)
    with pytest.raises(OutputError, match=r"out\.nii\.gz: cannot write it \(No space left on "
                                          r"device\); free disk space"):
        medip.save(volume, tmp_path / "out.nii.gz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code, fix", [(errno.EROFS, "writable file system"),
                                       (errno.EACCES, "folder you may write to")])
def test_a_read_only_or_forbidden_folder_is_one_error(volume, tmp_path, monkeypatch, code, fix):
    import tempfile

    def refused(*args, **kwargs):  # what the OS answers (root is never refused, so simulated)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(OutputError, match=fix):
        medip.save(volume, tmp_path / "out.npy")
    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(OutputError, match=fix):
        medip.save(volume, tmp_path / "series", format="dicom")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_during_a_save_leaves_no_partial_file(volume, tmp_path, monkeypatch):
    def interrupted(path, array, *args, **kwargs):
        open(path, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr("medip.io.formats.np.save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        medip.save(volume, tmp_path / "out.npy")
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_gzip_nifti_is_one_clear_error(sample_dir, tmp_path):
    data = (sample_dir / "mr_brain_t1_2mm.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.nii\.gz: not a readable NIfTI file"):
        medip.load(tmp_path / "cut.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(ValueError, match=r"junk\.nii\.gz: not a readable NIfTI file"):
        medip.load(tmp_path / "junk.nii.gz")


def test_a_missing_middle_slice_is_a_warning_naming_the_gap(sample_dir, tmp_path):
    series = tmp_path / "series"
    shutil.copytree(sample_dir / "ct_series_tiny", series)
    files = sorted(series.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    files[2].unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        medip.load(series)
    text = " ".join(str(w.message) for w in caught)
    assert "missing slice(s) between positions" in text and "->" in text
