"""The command line, simulations, batch runs (local, resumable, Dask) and the MONAI transform."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import medip
from medip.cli.main import cli_reference, main
from medip.app.batch import discover, read_manifest, run_batch, shard
from medip.app.options import JobOptions
from medip.engine.wiener import WINDOWS
from medip.errors import InputError

FAST = ["--max-steps", "40", "--quiet"]


def run(*args, check_rc=0):
    """The installed ``medip`` entry point in a fresh process: exit code and a one-line error."""
    done = subprocess.run(["medip", *map(str, args)], capture_output=True, text=True)
    assert done.returncode == check_rc, done.stderr
    assert "Traceback" not in done.stderr
    return done


def ok(*args):
    """A command that must succeed, run in this process: it does what it does through the entry
    point (``run``), without the seconds each fresh process spends importing torch."""
    assert main(list(map(str, args))) == 0


@pytest.fixture
def noisy_series(tmp_path, sample_dir):
    run("simulate", "noise", sample_dir / "ct_series_tiny", "-o", tmp_path / "noisy.nii.gz")
    return tmp_path / "noisy.nii.gz"


def test_denoise_writes_output_sidecar_and_is_reproducible(noisy_series, tmp_path, sample_dir):
    how = json.loads((tmp_path / "noisy.nii.gz.medip.json").read_text())
    assert how["simulation"]["kind"] == "gaussian noise" and len(how["input_sha256"]) == 64
    for name in ("a", "b"):
        assert main(["denoise", str(noisy_series), "-o", str(tmp_path / f"{name}.nii.gz"), *FAST,
                     "--reference", str(sample_dir / "ct_series_tiny"), "--preview"]) == 0
    a, b = (nib.load(tmp_path / f"{n}.nii.gz") for n in ("a", "b"))
    np.testing.assert_array_equal(a.get_fdata(), b.get_fdata())  # same command, same seed
    np.testing.assert_allclose(a.affine, nib.load(noisy_series).affine)
    record = json.loads((tmp_path / "a.nii.gz.medip.json").read_text())
    assert record["options"]["max_steps"] == 40 and record["seed"] == 0
    assert record["options"]["amp"] is False  # float32 unless asked
    assert record["options"]["wiener"] is True and record["wiener_shrink"] > 0  # refined
    assert tuple(record["wiener_window"]) in WINDOWS  # windows within or across slices
    assert record["wiener_matched"] is False  # block matching: single images only
    assert record["device"] == "cpu" and set(record["versions"]) >= {"medip", "torch", "monai",
                                                                     "pydicom", "nibabel"}
    assert record["metrics"]["psnr_db"] > 0 and str(noisy_series) in record["input_sha256"]
    assert (tmp_path / "a_preview.png").is_file()
    run("denoise", noisy_series, "-o", tmp_path / "a.nii.gz", *FAST, check_rc=1)  # no overwrite


def test_config_file_and_flags_override_it(noisy_series, tmp_path):
    config = tmp_path / "medip.toml"
    config.write_text('max-steps = 30\nseed = 7\npreset = "decoder"\namp = true\n'
                      'wiener = true\n')
    main(["denoise", str(noisy_series), "-o", str(tmp_path / "c.nii.gz"), "--config", str(config),
          "--seed", "3", "--no-amp", "--no-wiener", "--quiet"])
    record = json.loads((tmp_path / "c.nii.gz.medip.json").read_text())
    options = record["options"]
    assert (options["max_steps"], options["seed"], options["preset"]) == (30, 3, "decoder")
    assert options["amp"] is False and options["wiener"] is False  # the flags over the config
    assert record["wiener_shrink"] is None and record["wiener_window"] is None
    config.write_text("magic = 1\n")
    err = run("denoise", noisy_series, "-o", tmp_path / "d.nii.gz", "--config", config, check_rc=1)
    assert "unknown option(s) magic" in err.stderr and len(err.stderr.strip().splitlines()) == 1


def test_each_command_offers_only_its_tasks_options(tmp_path):
    denoise = run("denoise", "--help").stdout
    assert "--acceleration" not in denoise and "--angles" not in denoise and "--slab" in denoise
    ct = run("ct", "--help").stdout
    assert "--angles" in ct and "--patch" not in ct and "--slab" not in ct
    assert "--mask" not in run("superres", "--help").stdout
    config = tmp_path / "c.toml"
    config.write_text("acceleration = 4\n")
    err = run("denoise", tmp_path / "x.nii.gz", "-o", tmp_path / "y.nii.gz", "--config", config,
              check_rc=1)
    assert "--acceleration do(es) not apply to denoise" in err.stderr
    assert "--wiener" in denoise and "--wiener" not in ct
    config.write_text("wiener = true\n")
    err = run("inpaint", tmp_path / "x.nii.gz", "-o", tmp_path / "y.nii.gz", "--config", config,
              check_rc=1)
    assert "--wiener does not apply to inpaint" in err.stderr


def test_a_diverging_fit_is_one_line(noisy_series, tmp_path):
    err = run("denoise", noisy_series, "-o", tmp_path / "y.nii.gz", "--lr", "1e9",
              "--max-steps", "30", "--quiet", check_rc=1)
    assert err.stderr.startswith("medip: error: the loss became") and "lower lr" in err.stderr
    assert len(err.stderr.strip().splitlines()) == 1 and not (tmp_path / "y.nii.gz").exists()


def test_usage_and_input_errors_have_exit_codes_and_one_line(tmp_path):
    assert run("denoise", tmp_path / "x.nii.gz", check_rc=2).stderr  # -o missing
    err = run("denoise", tmp_path / "missing.nii.gz", "-o", tmp_path / "y.nii.gz", check_rc=1)
    assert err.stderr.strip() == f"medip: error: {tmp_path / 'missing.nii.gz'}: no such file or folder"


def test_inpaint_superres_ct_mri_commands(tmp_path, sample_dir):
    series = sample_dir / "ct_series_tiny"
    ok("simulate", "mask", series, "-o", tmp_path / "holes.nii.gz", "--missing", "0.3")
    ok("inpaint", tmp_path / "holes.nii.gz", "--mask", tmp_path / "holes_mask.nii.gz", "-o",
        tmp_path / "filled.nii.gz", "--noise-free", *FAST)
    known = medip.load(tmp_path / "holes_mask.nii.gz").array != 0
    filled, holes = (medip.load(tmp_path / f).array for f in ("filled.nii.gz", "holes.nii.gz"))
    np.testing.assert_allclose(filled[known], holes[known], rtol=1e-6)  # exact voxels kept
    assert json.loads((tmp_path / "filled.nii.gz.medip.json").read_text())["noise_free"]
    ok("simulate", "downsample", series, "-o", tmp_path / "low.nii.gz", "--factor", "2,2,1",
        "--kernel", "box")
    ok("superres", tmp_path / "low.nii.gz", "--factor", "2,2,1", "--kernel", "box",
        "--noise-free", "-o", tmp_path / "high.nii.gz", *FAST)
    high, original = medip.load(tmp_path / "high.nii.gz"), medip.load(series)
    assert high.shape == original.shape
    np.testing.assert_allclose(high.affine, original.affine, atol=1e-4)
    blocks = high.array.reshape(high.shape[0] // 2, 2, high.shape[1] // 2, 2, -1).mean((1, 3))
    low = medip.load(tmp_path / "low.nii.gz").array
    np.testing.assert_allclose(blocks, low, atol=1e-4 * np.ptp(low))  # the block means are kept
    ok("simulate", "ct", series, "-o", tmp_path / "sino.npy", "--angles", "20")
    (tmp_path / "sino.json").rename(tmp_path / "geometry.json")  # geometry given explicitly
    ok("ct", tmp_path / "sino.npy", "--geometry", tmp_path / "geometry.json", "-o",
        tmp_path / "ct", "--format", "dicom", *FAST)
    assert len(list((tmp_path / "ct").iterdir())) == 5
    ct_record = json.loads((tmp_path / "ct.medip.json").read_text())
    assert ct_record["options"]["preset"] == medip.defaults.PRESET  # the preset run, recorded
    ok("mri", sample_dir / "mr_kspace_gre_2coil.npy", "--acceleration", "4", "-o",
        tmp_path / "mri.nii.gz", "--ensemble", "2", *FAST)
    assert medip.load(tmp_path / "mri.nii.gz").shape == (160, 160, 1)
    record = json.loads((tmp_path / "mri.nii.gz.medip.json").read_text())
    assert record["options"]["ensemble"] == 2 and record["steps_run"] == [40, 40]  # per member


def test_mri_raw_data_through_the_command_line_with_a_classical_method(tmp_path, sample_dir):
    pytest.importorskip("twixtools")
    out = tmp_path / "tv.nii.gz"
    ok("mri", sample_dir / "mr_twix_gre.dat", "--acceleration", "4", "--method", "tv", "-o", out)
    image = nib.load(out)
    assert image.shape == (160, 160, 1)
    np.testing.assert_allclose(image.header.get_zooms(), (1.25, 1.25, 4.0), rtol=1e-5)
    record = json.loads((tmp_path / "tv.nii.gz.medip.json").read_text())
    assert record["options"]["method"] == "tv" and record["options"]["maps"] == "auto"
    done = run("mri", sample_dir / "mr_twix_gre.dat", "--method", "bm3d", "-o",
               tmp_path / "x.nii.gz", check_rc=2)
    assert "invalid choice: 'bm3d'" in done.stderr
    series = sample_dir / "ct_series_tiny"  # any scan: simulated 4-coil raw data of its slices
    ok("simulate", "mri", series, "-o", tmp_path / "raw.h5", "--coils", "4", "--acceleration",
        "2", "--sigma", "0.01")
    ok("mri", tmp_path / "raw.h5", "--maps", "ratio", "--method", "sense", "-o",
        tmp_path / "raw.nii.gz")
    source, result = medip.load(series), medip.load(tmp_path / "raw.nii.gz")
    assert result.shape == (16, 16, 5)  # (phase, readout, slice) of the source's (i, j, k)
    np.testing.assert_allclose(result.affine, source.affine[:, [1, 0, 2, 3]], atol=1e-3)
    simulated = json.loads((tmp_path / "raw.h5.medip.json").read_text())["simulation"]
    assert simulated["coils"] == 4 and simulated["achieved_acceleration"] > 1.5

@pytest.fixture
def scan_root(tmp_path, sample_dir):
    """Two good series (DICOM, NIfTI), one corrupt DICOM file and one unsupported file."""
    root = tmp_path / "root"
    shutil.copytree(sample_dir / "ct_series_tiny", root / "ct")
    brain = nib.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    (root / "mr").mkdir()
    crop = brain.get_fdata()[30:46, 40:56, 40:43].astype(np.float32)
    nib.save(nib.Nifti1Image(crop, brain.affine), root / "mr" / "brain.nii.gz")
    bad = pydicom.dcmread(root / "ct" / "2062")
    bad.SeriesInstanceUID, bad.SOPInstanceUID = generate_uid(), generate_uid()
    bad.save_as(root / "mr" / "bad.dcm")
    data = (root / "mr" / "bad.dcm").read_bytes()
    (root / "mr" / "bad.dcm").write_bytes(data[:-300])
    (root / "mr" / "notes.txt").write_text("not a scan")
    return root


def test_batch_runs_every_series_resumes_and_retries(scan_root, tmp_path):
    out = tmp_path / "out"
    options = JobOptions(task="denoise", max_steps=30, progress=False)
    counts = run_batch(scan_root, out, options, workers=2)
    assert (counts["done"], counts["failed"], counts["skipped"]) == (2, 1, 1)
    rows = read_manifest(out)
    failed = next(r for r in rows.values() if r["status"] == "failed")
    assert "bad.dcm" in failed["error"] and "truncated" in failed["error"]
    assert (out / "ct" / "series5.nii.gz").is_file() and (out / "mr" / "brain.nii.gz").is_file()
    assert not list(out.rglob(".*"))  # no temporary files left
    again = run_batch(scan_root, out, options)
    assert (again["already done"], again["done"], again["failed"]) == (2, 0, 1)
    retried = run_batch(scan_root, out, options, retry_failed=True)
    assert retried["failed"] == 1 and retried["done"] == 0
    jobs = discover(scan_root, out)
    assert len(shard(jobs, "1/2")) + len(shard(jobs, "2/2")) == len(jobs)
    with pytest.raises(ValueError, match="K/N"):
        shard(jobs, "3")


def test_a_chained_batch_starts_each_scan_from_the_one_before(tmp_path, sample_dir):
    """With chain=True the second scan of one shape starts from the first's weights (its
    result differs from an unchained run's), and the manifest and sidecar say which scan it
    started from; a scan of another shape starts cold."""
    root = tmp_path / "root"
    root.mkdir()
    brain = nib.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    for name, region in (("a", np.s_[30:46, 40:56, 40:43]), ("b", np.s_[30:46, 40:56, 50:53]),
                         ("c", np.s_[30:42, 40:56, 40:43])):
        crop = brain.get_fdata()[region].astype(np.float32)
        nib.save(nib.Nifti1Image(crop, brain.affine), root / f"{name}.nii.gz")
    out = tmp_path / "out"
    options = JobOptions(task="denoise", max_steps=30, warm_steps=10, progress=False)
    counts = run_batch(root, out, options, chain=True)
    assert counts["done"] == 3
    rows = read_manifest(out)
    assert rows["a.nii.gz"]["started_from"] is None and rows["c.nii.gz"]["started_from"] is None
    assert rows["b.nii.gz"]["started_from"] == str(root / "a.nii.gz")
    sidecar = json.loads((out / "b.nii.gz.medip.json").read_text())
    assert sidecar["started_from"] == str(root / "a.nii.gz")
    unchained = tmp_path / "unchained"
    run_batch(root, unchained, options)
    assert read_manifest(unchained)["b.nii.gz"]["started_from"] is None
    for name, same in (("a", True), ("b", False), ("c", True)):
        chained, alone = (nib.load(folder / f"{name}.nii.gz").get_fdata()
                          for folder in (out, unchained))
        assert np.array_equal(chained, alone) == same
    with pytest.raises(InputError, match="--ensemble 1"):
        run_batch(root, tmp_path / "members", replace(options, ensemble=2), chain=True)


def test_the_command_line_saves_a_start_and_starts_the_next_scan_from_it(tmp_path, sample_dir):
    brain = nib.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    for name, region in (("a", np.s_[30:46, 40:56, 40:43]), ("b", np.s_[30:46, 40:56, 50:53]),
                         ("c", np.s_[30:42, 40:56, 40:43])):
        crop = brain.get_fdata()[region].astype(np.float32)
        nib.save(nib.Nifti1Image(crop, brain.affine), tmp_path / f"{name}.nii.gz")
    few = ["--max-steps", "30", "--warm-steps", "10", "--no-wiener", "--quiet"]
    ok("denoise", tmp_path / "a.nii.gz", "-o", tmp_path / "a-out.nii.gz", "--save-start",
       tmp_path / "a.pt", *few)
    ok("denoise", tmp_path / "b.nii.gz", "-o", tmp_path / "b-started.nii.gz", "--start-from",
       tmp_path / "a.pt", *few)
    ok("denoise", tmp_path / "b.nii.gz", "-o", tmp_path / "b-cold.nii.gz", *few)
    sidecar = json.loads((tmp_path / "b-started.nii.gz.medip.json").read_text())
    assert sidecar["started_from"] == str(tmp_path / "a.nii.gz")
    assert sidecar["options"]["start_from"] == str(tmp_path / "a.pt")
    started, cold = (nib.load(tmp_path / f"b-{how}.nii.gz").get_fdata() for how in ("started",
                                                                                   "cold"))
    assert not np.array_equal(started, cold)
    refused = run("denoise", tmp_path / "c.nii.gz", "-o", tmp_path / "c-out.nii.gz",
                  "--start-from", tmp_path / "a.pt", *few, check_rc=1)
    assert f"the start in {tmp_path / 'a.pt'} was fitted on images of (16, 16) voxels" in \
        refused.stderr
    (tmp_path / "junk.pt").write_bytes(b"not weights")
    junk = run("denoise", tmp_path / "b.nii.gz", "-o", tmp_path / "b-junk.nii.gz",
               "--start-from", tmp_path / "junk.pt", *few, check_rc=1)
    assert f"{tmp_path / 'junk.pt'}: not a medip start file" in junk.stderr
    kept = run("denoise", tmp_path / "b.nii.gz", "-o", tmp_path / "b-again.nii.gz",
               "--save-start", tmp_path / "a.pt", *few, check_rc=1)
    assert "a.pt exists; pass --overwrite" in kept.stderr
    assert not (tmp_path / "b-again.nii.gz").exists()
    with pytest.raises(InputError, match="save_start names one file"):
        run_batch(tmp_path, tmp_path / "out", JobOptions(save_start=str(tmp_path / "x.pt")))


def test_batch_sigterm_leaves_finished_outputs_and_an_honest_manifest(scan_root, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(["medip", "batch", str(scan_root), "--task", "denoise", "-o", str(out),
                             "--max-steps", "100000", "--stopper", "100000", "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # wait for the event: the run loop has begun
    while "skipped" not in _text(out / "manifest.jsonl") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "interrupted" in stderr and "Traceback" not in stderr
    rows = read_manifest(out)
    assert all(r["status"] in ("skipped", "failed") for r in rows.values())
    assert not list(out.rglob("*.nii.gz")) and not list(out.rglob(".*"))


def _catches_sigterm(pid: int) -> bool:
    status = open(f"/proc/{pid}/status").read()
    caught = int(next(line.split()[1] for line in status.splitlines()
                      if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _text(path) -> str:
    return path.read_text() if path.exists() else ""


def test_sigterm_while_still_importing_is_a_clean_stop(scan_root, tmp_path):
    proc = subprocess.Popen(["medip", "batch", str(scan_root), "--task", "denoise", "-o",
                             str(tmp_path / "out"), "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60  # the event: medip has its SIGTERM handler (Linux /proc)
    while not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)  # its heavy modules are still loading
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "interrupted" in stderr and "Traceback" not in stderr
    assert not list((tmp_path / "out").rglob("*.nii.gz"))


def test_batch_on_a_dask_cluster(scan_root, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        counts = run_batch(scan_root, tmp_path / "out", JobOptions(max_steps=20, progress=False),
                           scheduler=cluster.scheduler_address)
    assert (counts["done"], counts["failed"], counts["skipped"]) == (2, 1, 1)


def test_monai_transform_keeps_metadata(sample_dir, tmp_path):
    from monai.transforms import Compose, LoadImaged

    from medip.integrations.monai import DeepImagePriord

    path = tmp_path / "crop.nii.gz"
    brain = nib.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    nib.save(nib.Nifti1Image(brain.get_fdata()[30:46, 40:56, 40:48].astype(np.float32),
                             brain.affine), path)
    pipeline = Compose([LoadImaged("image", ensure_channel_first=True, image_only=True),
                        DeepImagePriord("image", max_steps=20)])
    out = pipeline({"image": str(path)})
    assert out["image"].shape == (1, 16, 16, 8) and out["image_dip_variance"].shape == (1, 16, 16, 8)
    np.testing.assert_allclose(np.asarray(out["image"].affine), brain.affine)


def test_cli_reference_in_docs_is_in_sync():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    assert docs.read_text() == cli_reference(), "regenerate: medip --markdown > docs/cli.md"


def test_cli_module_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "medip.cli.main", "--version"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and medip.__version__ in done.stdout


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    return [int(c) for c in open(path).read().split()] if os.path.exists(path) else []


def test_kill_9_of_a_worker_keeps_the_manifest_true_and_a_rerun_completes(scan_root, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(["medip", "batch", str(scan_root), "--task", "denoise", "-o", str(out),
                             "--workers", "2", "--max-steps", "100000", "--stopper", "100000",
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while "skipped" not in _text(out / "manifest.jsonl") and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = []
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = _children(proc.pid)
        time.sleep(0.05)
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "a worker process died" in stderr and "Traceback" not in stderr
    assert all(r["status"] in ("skipped", "failed") for r in read_manifest(out).values())
    assert not list(out.rglob("*.nii.gz"))
    counts = run_batch(scan_root, out, JobOptions(max_steps=10, progress=False))
    assert counts["done"] == 2 and counts["failed"] == 1  # the corrupt DICOM file, as before


def test_two_batch_runs_on_one_output_folder_do_not_clobber(scan_root, tmp_path):
    from medip.app.batch import output_lock

    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out):  # a first run holds the folder
        with pytest.raises(ValueError, match=r"another medip batch \(pid \d+\) is writing there"):
            run_batch(scan_root, out, JobOptions(max_steps=5, progress=False))
    assert not (out / "manifest.jsonl").exists()
    assert run_batch(scan_root, out, JobOptions(max_steps=5, progress=False))["done"] == 2


def test_an_input_that_vanishes_during_a_run_fails_alone_and_new_ones_wait(scan_root, tmp_path):
    brain = scan_root / "mr" / "brain.nii.gz"
    moved = tmp_path / "brain.nii.gz"

    def change_the_folder(row):
        if row["status"] == "skipped" and brain.exists():
            shutil.move(brain, moved)  # gone before its job runs
            shutil.copy(moved, scan_root / "mr" / "late.nii.gz")  # arrives during the run

    counts = run_batch(scan_root, tmp_path / "out", JobOptions(max_steps=5, progress=False),
                       on_row=change_the_folder)
    rows = read_manifest(tmp_path / "out")
    assert rows["mr/brain.nii.gz"]["status"] == "failed"
    assert "no such file" in rows["mr/brain.nii.gz"]["error"] and "mr/late.nii.gz" not in rows
    assert counts["done"] == 1
    assert run_batch(scan_root, tmp_path / "out", JobOptions(max_steps=5, progress=False))[
        "done"] == 1  # the next run picks up the new scan


def test_more_workers_than_cpus_are_capped_and_threads_recorded(scan_root, tmp_path, caplog,
                                                                monkeypatch):
    monkeypatch.setattr("medip.app.batch.available_cpus", lambda: 1)
    with caplog.at_level("WARNING", logger="medip"):
        run_batch(scan_root, tmp_path / "out", JobOptions(max_steps=5, progress=False), workers=4)
    assert "--workers 4 is more than the 1 CPU(s)" in caplog.text
    done = [r for r in read_manifest(tmp_path / "out").values() if r["status"] == "done"]
    assert len(done) == 2 and all(r["threads"] == 1 for r in done)


def test_threads_follow_the_cpus_this_process_may_use(monkeypatch):
    from medip.engine import device

    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(device, "_cgroup_quota", lambda: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert device.available_cpus() == 3
    monkeypatch.setattr(device, "_cgroup_quota", lambda: 2.0)  # a container's quota
    assert device.available_cpus() == 2 and device.threads_per_worker(2) == 1
    assert device.threads_per_worker(2, threads=4) == 4


def test_cgroup_quota_files_are_read(tmp_path):
    from medip.engine.device import _cgroup_quota

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_quota(tmp_path) is None


def test_a_2_gb_nifti_is_refused_for_3d_before_it_is_read(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 512))
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    path = tmp_path / "huge.nii"
    with open(path, "wb") as f:  # a sparse 2 GiB file: the header is real, the voxels are holes
        f.write(header.binaryblock + b"\0" * (352 - len(header.binaryblock)))
        f.truncate(352 + 1024 * 1024 * 512 * 4)
    start = time.monotonic()
    err = run("denoise", path, "-o", tmp_path / "out.nii.gz", "--mode", "3d", check_rc=1)
    error = err.stderr.strip().splitlines()[-1]  # after the estimate's log line
    assert error.startswith("medip: error: 3d mode needs about") and "Traceback" not in err.stderr
    assert "use mode='slices' or mode='patches'" in error and time.monotonic() - start < 30


def test_ct_3d_and_multi_slice_mri_through_the_command_line(tmp_path, sample_dir, kspace_2coil):
    import h5py

    series = sample_dir / "ct_series_tiny"
    ok("simulate", "ct", series, "-o", tmp_path / "sino.npy", "--angles", "16")
    ok("ct", tmp_path / "sino.npy", "--mode", "3d", "-o", tmp_path / "ct.nii.gz", *FAST)
    ct = medip.load(tmp_path / "ct.nii.gz")
    assert ct.shape == (16, 16, 5) and ct.spacing[0] == pytest.approx(medip.load(series).spacing[0])
    err = run("ct", tmp_path / "sino.npy", "--mode", "patches", "-o", tmp_path / "p.nii.gz",
              check_rc=2)
    assert "invalid choice: 'patches'" in err.stderr
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["kspace"] = np.stack([kspace_2coil.numpy()] * 3)
    ok("mri", tmp_path / "raw.h5", "--acceleration", "4", "-o", tmp_path / "mr.nii.gz", *FAST)
    assert medip.load(tmp_path / "mr.nii.gz").shape == (160, 160, 3)
    record = json.loads((tmp_path / "mr.nii.gz.medip.json").read_text())
    assert len(record["stop_steps"]) == 3 and record["threads"] >= 1
