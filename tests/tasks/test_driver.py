"""The volume driver on real data: slices with warm starts, 3D, patches, geometry, and CT and MRI
volumes from sinogram and k-space stacks."""

import numpy as np
import pytest
import torch

import medip
from medip.engine import estimate
from medip.engine.metrics import psnr
from medip.engine.wiener import WINDOWS
from medip.errors import InputError
from medip.reconstruct import FitStart, _ramp, _starts, reconstruct_volume, slab_starts
from medip.tasks import fit_defaults, make_task, upsampled_affine


@pytest.fixture(scope="module")
def brain(sample_dir):
    return medip.load(sample_dir / "mr_brain_t1_2mm.nii.gz")


def noisy_crop(brain, region, sigma_fraction=50 / 255, seed=0):
    clean = brain.with_array(brain.array[region].copy())
    rng = np.random.default_rng(seed)
    sigma = sigma_fraction * float(np.ptp(clean.array))
    noise = rng.standard_normal(clean.shape).astype(np.float32) * sigma
    return clean, clean.with_array(clean.array + noise)


def gain(result, clean, noisy):
    ref = torch.from_numpy(clean.array)
    return psnr(torch.from_numpy(result.array), ref) - psnr(torch.from_numpy(noisy.array), ref)


def test_slices_warm_start_denoise_keeps_geometry(brain):
    clean, noisy = noisy_crop(brain, (slice(24, 72), slice(30, 78), slice(40, 46)))
    res = reconstruct_volume(noisy, "denoise", "slices", max_steps=200, warm_steps=60,
                             progress=False)
    assert res.volume.shape == clean.shape and res.variance.shape == clean.shape
    np.testing.assert_array_equal(res.volume.affine, noisy.affine)
    assert len(res.steps_run) == 4  # 3-slice slabs starting at slices 0 to 3, the middle cold
    assert res.steps_run[2] <= 200 and max(res.steps_run[:2] + res.steps_run[3:]) <= 60
    assert gain(res.volume, clean, noisy) > 3
    assert (res.variance.array >= 0).all()


def test_a_scan_starts_from_another_scans_fitted_weights(brain):
    """The next scan of a protocol (here slices 8 mm further on, other noise) starts its first
    fit from the weights of the scan before, with the warm budget: in the same 60 steps it
    gets far closer to the image than a cold start."""
    before = noisy_crop(brain, (slice(24, 72), slice(30, 78), slice(36, 39)))[1]
    clean, noisy = noisy_crop(brain, (slice(24, 72), slice(30, 78), slice(40, 43)), seed=1)
    first = reconstruct_volume(before, "denoise", max_steps=300, wiener=False, progress=False)
    assert (first.start.task, first.start.mode, first.start.shape) == ("denoise", "slices",
                                                                      (3, 48, 48))
    assert first.start.source == str(before.source or "")
    short = dict(stopper=60, warm_steps=60, wiener=False, progress=False)
    cold = reconstruct_volume(noisy, "denoise", max_steps=60, **short)
    started = reconstruct_volume(noisy, "denoise", max_steps=300, start=first.start, **short)
    assert started.steps_run == cold.steps_run == [60]
    assert gain(started.volume, clean, noisy) > gain(cold.volume, clean, noisy) + 1


@pytest.mark.parametrize("mode", ["3d", "patches"])
def test_3d_and_patch_fits_start_from_another_scans_weights_too(brain, mode):
    _, noisy = noisy_crop(brain, (slice(40, 56), slice(40, 56), slice(40, 52)))
    few = dict(stopper=6, max_steps=6, patch=12, overlap=4, wiener=False, progress=False)
    cold = reconstruct_volume(noisy, "denoise", mode, **few)
    assert cold.start.mode == mode
    assert cold.start.shape == ((1, 16, 16, 12) if mode == "3d" else (1, 12, 12, 12))
    started = reconstruct_volume(noisy, "denoise", mode, start=cold.start, **few)
    assert started.steps_run == cold.steps_run  # a fixed count: the same budgets
    assert not np.array_equal(started.volume.array, cold.volume.array)


def test_a_start_that_does_not_fit_the_reconstruction_is_refused(brain):
    _, noisy = noisy_crop(brain, (slice(40, 56), slice(40, 56), slice(40, 43)))
    start = reconstruct_volume(noisy, "denoise", max_steps=4, wiener=False, progress=False).start
    other = noisy.with_array(noisy.array[:12].copy())
    with pytest.raises(InputError, match=r"fitted on images of \(16, 16\) voxels but this "
                                         r"reconstruction's fits are \(12, 16\)"):
        reconstruct_volume(other, "denoise", max_steps=4, start=start, progress=False)
    with pytest.raises(InputError, match="fitted with mode 'slices' but this reconstruction "
                                         "runs '3d'"):
        reconstruct_volume(noisy, "denoise", "3d", max_steps=4, start=start, progress=False)
    with pytest.raises(InputError, match="use ensemble 1"):
        reconstruct_volume(noisy, "denoise", max_steps=4, ensemble=2, start=start)


def test_a_start_saved_to_a_file_starts_a_fit_as_the_one_in_memory(brain, tmp_path):
    _, noisy = noisy_crop(brain, (slice(40, 56), slice(40, 56), slice(40, 43)))
    run = dict(stopper=6, max_steps=6, warm_steps=6, wiener=False, progress=False)
    start = reconstruct_volume(noisy, "denoise", **run).start
    path = start.save(tmp_path / "start.pt")
    loaded = FitStart.load(path)
    assert (loaded.task, loaded.mode, loaded.generator, loaded.shape, loaded.source) == (
        start.task, start.mode, start.generator, start.shape, start.source)
    in_memory, from_file = (reconstruct_volume(noisy, "denoise", start=s, **run)
                            for s in (start, loaded))
    np.testing.assert_array_equal(in_memory.volume.array, from_file.volume.array)
    with pytest.raises(FileExistsError, match="exists"):
        start.save(path)
    with pytest.raises(InputError, match=r"the start in .*start\.pt was fitted with mode "
                                         r"'slices' but this reconstruction runs '3d'"):
        reconstruct_volume(noisy, "denoise", "3d", start=loaded, **run)
    (tmp_path / "junk.pt").write_bytes(b"not weights")
    torch.save({"state": {}}, tmp_path / "other.pt")
    for name in ("junk.pt", "other.pt"):
        with pytest.raises(InputError, match=rf"{name}: not a medip start file"):
            FitStart.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no such start file"):
        FitStart.load(tmp_path / "none.pt")


def test_default_warm_budget_never_exceeds_max_steps(brain):
    _, noisy = noisy_crop(brain, (slice(40, 56), slice(40, 56), slice(40, 43)))
    res = reconstruct_volume(noisy, "denoise", "slices", max_steps=5, progress=False)
    assert max(res.steps_run) <= 5


def test_3d_and_patches_modes(brain):
    clean, noisy = noisy_crop(brain, (slice(30, 54), slice(40, 64), slice(36, 52)))
    whole = reconstruct_volume(noisy, "denoise", "3d", max_steps=200, progress=False)
    assert whole.volume.shape == clean.shape and gain(whole.volume, clean, noisy) > 2
    clean, noisy = clean.with_array(clean.array[:, :16].copy()), noisy.with_array(
        noisy.array[:, :16].copy())  # a 2 x 1 x 1 patch grid: one cold fit, one warm
    patched = reconstruct_volume(noisy, "denoise", "patches", patch=16, overlap=4, max_steps=200,
                                 warm_steps=60, progress=False)
    assert len(patched.stop_steps) == 2 and patched.steps_run[1] <= 60
    assert gain(patched.volume, clean, noisy) > 2


@pytest.mark.parametrize("mode", ["slices", "3d"])
def test_ensemble_is_the_mean_of_restorations_with_successive_seeds(brain, mode):
    _, noisy = noisy_crop(brain, (slice(40, 56), slice(40, 56), slice(40, 43)))
    # the averaging alone: the Wiener refinement of the mean is not the mean of the refinements
    run = dict(mode=mode, stopper=8, max_steps=8, warm_steps=8, wiener=False, progress=False)
    singles = [reconstruct_volume(noisy, "denoise", seed=s, **run) for s in (4, 5)]
    both = reconstruct_volume(noisy, "denoise", seed=4, ensemble=2, **run)
    np.testing.assert_allclose(both.volume.array, (singles[0].volume.array
                                                   + singles[1].volume.array) / 2, rtol=1e-6)
    assert both.stop_steps == singles[0].stop_steps + singles[1].stop_steps
    np.testing.assert_array_equal(both.volume.affine, noisy.affine)
    with pytest.raises(ValueError, match="ensemble must be >= 1"):
        reconstruct_volume(noisy, "denoise", ensemble=0, **run)


def test_patch_grid_covers_the_volume_and_weights_never_vanish():
    assert _starts(24, 16, 4) == [0, 8] and _starts(10, 16, 4) == [0] and _starts(40, 16, 4) == [0, 12, 24]
    ramp = _ramp(16, 4)
    assert float(ramp.min()) > 0 and float(ramp.max()) == 1 and torch.equal(ramp, ramp.flip(0))


def test_superres_slices_gives_the_fine_grid(brain):
    fine = brain.with_array(brain.array[30:62, 40:72, 45:47].copy())
    coarse_array = fine.array.reshape(16, 2, 16, 2, 2).mean((1, 3))
    coarse = fine.with_array(coarse_array, upsampled_affine(fine.affine, (0.5, 0.5, 1)))
    res = reconstruct_volume(coarse, "superres", "slices", factors=(2, 2, 1), kernel="box",
                             max_steps=30, warm_steps=10, progress=False)
    assert res.volume.shape == fine.shape
    np.testing.assert_allclose(res.volume.affine, fine.affine, atol=1e-9)


def test_clear_errors(brain, monkeypatch):
    small = brain.with_array(brain.array[:16, :16, :8].copy())
    with pytest.raises(ValueError, match="needs mode='3d'"):
        reconstruct_volume(small, "superres", "slices", factors=(1, 1, 2))
    with pytest.raises(ValueError, match="voxel-wise task"):
        reconstruct_volume(small, "superres", "patches")
    with pytest.raises(ValueError, match="unknown mode"):
        reconstruct_volume(small, "denoise", "tiles")
    from medip.operators import Identity
    with pytest.raises(ValueError, match=r"mode='slices' does not apply to 'operator'"):
        reconstruct_volume(small, Identity(), "slices")
    for slab in (2, 9):
        with pytest.raises(ValueError, match="odd number of slices between 1 and 8"):
            reconstruct_volume(small, "denoise", slab=slab)
    with pytest.raises(ValueError, match="slab=3 needs a voxel-wise task"):
        reconstruct_volume(small, "superres", slab=3)
    bad = small.with_array(small.array.copy())
    bad.array[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        reconstruct_volume(bad, "denoise", "3d")
    monkeypatch.setattr(estimate, "available_memory", lambda device: 1000)
    with pytest.raises(MemoryError, match=r"3d mode needs about .* use mode='slices' or "
                                          r"mode='patches'"):
        reconstruct_volume(small, "denoise", "3d")


def test_the_driver_expects_its_time_before_the_fits_start(brain, caplog):
    from medip.reconstruct import (START_STEPS, TYPICAL_COLD_STEPS, TYPICAL_WARM_SHARE, _Budget,
                                   expected_steps)

    budget = _Budget("auto", 3000, None)
    assert expected_steps(1, budget, False) == (TYPICAL_COLD_STEPS, 3000)
    warm = 10 * TYPICAL_WARM_SHARE * 500
    assert expected_steps(11, budget, False) == (TYPICAL_COLD_STEPS + warm, 8000)
    assert expected_steps(11, budget, True) == (8000, 8000)  # exact data run every step
    started = TYPICAL_WARM_SHARE * START_STEPS  # the first fit from another scan's weights
    assert expected_steps(11, budget, False, True) == (started + warm, START_STEPS + 5000)
    assert expected_steps(3, _Budget(40, 3000, 10), False) == (60, 60)
    _, noisy = noisy_crop(brain, (slice(40, 56), slice(40, 56), slice(40, 45)))
    with caplog.at_level("INFO", logger="medip"):
        res = reconstruct_volume(noisy, "denoise", stopper=6, max_steps=6, warm_steps=4,
                                 progress=False)
    expected = res.estimate.expected_seconds
    assert expected == pytest.approx(res.estimate.seconds(14, 3))  # 6 + 2 x 4 steps
    assert f"3 fit(s), expected about {expected:.0f} s" in caplog.text


def test_the_time_estimate_counts_the_operators_share_of_a_step(brain):
    """The probe is a real fit: a slow forward operator (a NUFFT, a big Radon) shows in the
    seconds per step, which timing the generator alone could not see."""
    import time

    from medip.operators import Identity

    class Slow(Identity):
        def forward(self, x):
            time.sleep(0.05)
            return super().forward(x)

    _, noisy = noisy_crop(brain, (slice(40, 56), slice(40, 56), slice(40, 48)))
    res = reconstruct_volume(noisy, Slow(), "3d", stopper=5, max_steps=5, progress=False)
    assert res.estimate.seconds_per_step >= 0.05
    assert res.estimate.expected_seconds >= 5 * 0.05


class _FitCalled(Exception):
    """Raised by the fit spy once it has seen the options."""


@pytest.mark.parametrize("task, lr, residual, tv, detail", [("superres", 0.02, True, 0.0, 0.0),
                                                           ("denoise", 0.01, False, 4.0, 4.0)])
def test_library_and_cli_share_the_task_fit_defaults(brain, monkeypatch, task, lr, residual, tv,
                                                     detail):
    from medip.app.options import JobOptions
    seen = {}

    def spy(*args, **options):
        seen.update(options)
        raise _FitCalled

    monkeypatch.setattr("medip.reconstruct.fit", spy)
    small = brain.with_array(brain.array[40:48, 40:48, 40:42].copy())
    with pytest.raises(_FitCalled):
        reconstruct_volume(small, task, max_steps=2, progress=False)
    assert (seen["lr"], seen["residual"], seen["tv"], seen["detail"]) == (lr, residual, tv, detail)
    assert JobOptions(task=task).detail_strength() == detail == fit_defaults(task)["detail"]
    assert JobOptions(task=task).learning_rate() == lr
    assert JobOptions(task=task).wiener_refined() is (task == "denoise")
    assert JobOptions(task=task).tv_strength() == tv == fit_defaults(task)["tv"]
    assert seen["generator"] == JobOptions(task=task).generator() == fit_defaults(task)["generator"]


def test_noise_weighted_options_need_a_task_that_estimates_its_noise(brain):
    small = brain.with_array(brain.array[40:48, 40:48, 40:42].copy())
    with pytest.raises(InputError, match="'superres' does not estimate"):
        reconstruct_volume(small, "superres", tv=1.0, max_steps=2, progress=False)
    with pytest.raises(InputError, match="detail=1 is weighted by the noise level"):
        reconstruct_volume(small, "superres", detail=1.0, max_steps=2, progress=False)


def test_denoised_volumes_are_wiener_refined_by_default(brain):
    """The same fits (same seed) with and without the refinement: it only adds, and raises
    PSNR on the real brain crop; other tasks refuse it."""
    clean, noisy = noisy_crop(brain, (slice(24, 72), slice(30, 78), slice(40, 45)), 25 / 255)
    plain = reconstruct_volume(noisy, "denoise", max_steps=150, warm_steps=40, wiener=False,
                               progress=False)
    refined = reconstruct_volume(noisy, "denoise", max_steps=150, warm_steps=40, progress=False)
    assert plain.wiener_shrink is None and refined.wiener_shrink > 0
    assert plain.wiener_window is None and refined.wiener_window in WINDOWS
    assert plain.stop_steps == refined.stop_steps
    assert gain(refined.volume, clean, noisy) > gain(plain.volume, clean, noisy) + 0.3
    np.testing.assert_array_equal(refined.variance.array, plain.variance.array)
    assert not refined.wiener_matched  # a volume: windows across slices, no block matching
    image = noisy.with_array(noisy.array[:, :, 2:3].copy())  # one plane: both stages
    single = reconstruct_volume(image, "denoise", max_steps=150, wiener=False, progress=False)
    matched = reconstruct_volume(image, "denoise", max_steps=150, progress=False)
    assert matched.wiener_matched and not single.wiener_matched
    plane = clean.with_array(clean.array[:, :, 2:3].copy())
    assert gain(matched.volume, plane, image) > gain(single.volume, plane, image) + 0.3
    with pytest.raises(InputError, match="'superres' has no such refinement"):
        reconstruct_volume(noisy, "superres", wiener=True, max_steps=2, progress=False)


def test_slab_fits_average_into_every_slice_they_saw(brain, monkeypatch):
    """Each fit sees 3 slices (clamped at the ends); a slice is the mean over the fits that saw
    it. Stand-in fits return their measurement, with fit t's index as its variance."""
    import types

    seen = []

    def identity_fits(problems, *args, **kwargs):
        seen.extend(p.y.shape for p in problems)
        return [types.SimpleNamespace(image=p.y, variance_map=torch.full_like(p.y, float(t)),
                                      stop_step=0, steps_run=1, history={},
                                      generator_state=None)
                for t, p in enumerate(problems)]

    monkeypatch.setattr("medip.reconstruct.fit_stack", identity_fits)
    small = brain.with_array(brain.array[30:46, 40:52, 40:46].copy())
    # slab 3 by default; no Wiener refinement, which would change the stand-ins' slices
    res = reconstruct_volume(small, "denoise", wiener=False, progress=False)
    assert seen == [(1, 3, 16, 12)] * 4
    np.testing.assert_allclose(res.volume.array, small.array, rtol=1e-6)
    # fits start at slices 0, 1, 2, 3 (the end slabs once each): slice 2 is seen by fits 0-2
    np.testing.assert_allclose(res.variance.array[0, 0], [0, 0.5, 1, 2, 2.5, 3])
    reconstruct_volume(small, "inpaint", mask=np.ones(small.shape), progress=False)
    assert seen[-1] == (1, 1, 16, 12)  # inpainting keeps one slice per fit unless asked


@pytest.mark.parametrize("depth,slab,stride", [(91, 3, 1), (91, 3, 3), (16, 3, 3), (15, 3, 2),
                                               (15, 5, 5), (6, 3, 1), (1, 1, 1)])
def test_slab_starts_cover_every_slice_once_per_slab(depth, slab, stride):
    starts = slab_starts(depth, slab, stride)
    assert starts == sorted(set(starts)) and starts[0] == 0 and starts[-1] == depth - slab
    covered = np.zeros(depth, int)
    for s in starts:
        covered[s:s + slab] += 1
    assert covered.min() >= 1
    # the cold fit (fit_stack's middle problem) holds the volume's middle slice at every stride
    assert starts[len(starts) // 2] <= depth // 2 < starts[len(starts) // 2] + slab
    if stride == slab:
        assert len(starts) <= -(-depth // slab) + 1


def test_inpaint_slabs_fill_from_neighbouring_slices(brain):
    clean = brain.with_array(brain.array[28:60, 36:68, 44:48].copy())
    known = np.random.default_rng(0).random(clean.shape) > 0.5
    masked = clean.with_array(np.where(known, clean.array, 0).astype(np.float32))
    res = reconstruct_volume(masked, "inpaint", mask=known, slab=3, max_steps=150, warm_steps=60,
                             progress=False)
    assert gain(res.volume, clean, masked) > 8
    # the scan as stored has no measurable noise: the driver judged it exact and kept it
    assert res.noise_free
    np.testing.assert_allclose(res.volume.array[known], clean.array[known], rtol=1e-5)


def test_inpainting_judges_from_the_data_whether_known_voxels_are_exact(brain):
    clean = brain.with_array(brain.array[28:60, 36:68, 40:52].copy())
    known = np.random.default_rng(0).random(clean.shape) > 0.5
    _, noisy = noisy_crop(brain, (slice(28, 60), slice(36, 68), slice(40, 52)), 5 / 255)
    assert make_task("inpaint", clean, mask=known).exact
    assert not make_task("inpaint", noisy, mask=known).exact
    assert not make_task("denoise", clean).exact  # only a task that can judge it says exact
    told = reconstruct_volume(clean, "inpaint", mask=known, noise_free=False, stopper=3,
                              max_steps=3, warm_steps=3, progress=False)
    assert not told.noise_free  # the user's word wins


def test_running_out_of_memory_mid_fit_names_the_mode_that_would_fit(brain, monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")

    monkeypatch.setattr("medip.reconstruct.fit", exhausted)
    small = brain.with_array(brain.array[:16, :16, :8].copy())
    with pytest.raises(MemoryError, match=r"ran out of memory on cpu in 3d mode \(CUDA out of "
                                          r"memory. Tried to allocate 2.00 GiB\); use "
                                          r"mode='slices' or mode='patches'"):
        reconstruct_volume(small, "denoise", "3d", progress=False)
