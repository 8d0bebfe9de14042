"""The noise level medip estimates and the noise floor its stoppers wait for (discrepancy)."""

import pytest
import torch
import torch.nn.functional as F

import medip
from medip.engine.fitting import stop_rule
from medip.engine.stopping import (LossWatch, WindowedVariance, discrepancy_step, make_stopper,
                                   noise_floor)
from medip.engine.losses import TransmissionPoisson
from medip.errors import InputError
from medip.operators import Identity, estimate_sigma, gaussian, random_pixel_mask
from medip.tasks.restore import Denoise, Inpaint


@pytest.fixture(scope="module")
def head(ct_hu):
    """The real head CT slice at 256^2, in HU (air clipped to -1000)."""
    hu = torch.tensor(ct_hu, dtype=torch.float32).clamp(min=-1000)[None, None]
    return F.avg_pool2d(hu, 2)


@pytest.mark.parametrize("fraction", [10 / 255, 25 / 255, 50 / 255])
def test_estimated_noise_is_close_to_the_true_level_and_to_scikit_image(head, fraction):
    from skimage.restoration import estimate_sigma as reference

    sigma = fraction * float(head.max() - head.min())
    noisy = gaussian(head, sigma, seed=1)
    estimate = estimate_sigma(noisy)
    assert abs(estimate / sigma - 1) < 0.1, (estimate, sigma)
    theirs = float(reference(noisy[0, 0].double().numpy()))
    assert abs(estimate / theirs - 1) < 0.05, (estimate, theirs)


def test_noise_of_known_pixels_complex_data_and_small_inputs(head):
    sigma = 100.0
    noisy = gaussian(head, sigma, seed=2)
    known = random_pixel_mask(head.shape[-2:], 0.5, seed=0)
    assert abs(estimate_sigma(noisy * known, known=known) / sigma - 1) < 0.1
    # complex: the root of E|n|^2 over both parts, gaussian's convention
    k = gaussian(torch.zeros(1, 1, 128, 128, dtype=torch.complex64), 3.0, seed=0)
    assert estimate_sigma(k) == pytest.approx(3.0, rel=0.05)
    with pytest.raises(ValueError, match="at least 2x2"):
        estimate_sigma(torch.zeros(5, 1))
    with pytest.raises(ValueError, match="no 2x2 block"):
        estimate_sigma(head, known=torch.zeros(head.shape[-2:], dtype=torch.bool))


def test_noise_floor_counts_only_measured_samples():
    y = torch.ones(1, 1, 10, 10)
    assert noise_floor(y, 2.0) == pytest.approx(4.0)
    y[..., :5, :] = 0  # half unmeasured (a mask's or sampling pattern's exact zeros)
    assert noise_floor(y, 2.0) == pytest.approx(2.0)


def test_loss_watch_waits_for_the_smoothed_loss_to_reach_the_floor():
    losses = [5, 4, 3, 2, 1, 0.5, 0.4] * 3
    assert discrepancy_step(losses, 1.0, window=4) == 6  # mean(2, 1, 0.5, 0.4) <= 1
    assert discrepancy_step(losses, 0.0, window=4) == len(losses)  # never reached
    with pytest.raises(ValueError, match="noise floor"):
        LossWatch(-1.0)


def test_no_variance_minimum_counts_before_the_floor_and_replay_agrees():
    """A plateau (zero variance) before the data are explained is skipped; replaying the
    recorded histories gives the step the live stopper returned."""
    values = [10, 5, 2, 1, 1, 1, 1, 1, 3, 7, 12, 20, 20, 20, 20, 20, 25, 40, 60, 90, 130]
    losses = [9, 8, 7, 6, 5, 5, 5, 5, 4, 3, 2, 1, 0.5, 0.5, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1]
    outputs = [torch.full((1, 1, 2, 2), float(v)) for v in values]
    live = WindowedVariance(window=4, patience=5, floor=1.0)
    live.watch = LossWatch(1.0, window=1)  # this short history: no smoothing
    for i, (x, loss) in enumerate(zip(outputs, losses)):
        live.observe(loss)
        if live.update(i, x):
            break
    assert live.best_step == 14 and float(live.best.mean()) == 20  # not the plateau at 3-7
    recorder = WindowedVariance(window=4, patience=10 ** 9)
    for i, x in enumerate(outputs):
        recorder.update(i, x)
    rule = WindowedVariance(window=4, patience=5, floor=1.0)
    rule.watch = LossWatch(1.0, window=1)
    assert rule.replay(recorder.history, losses) == live.best_step
    with pytest.raises(ValueError, match="loss history"):
        rule.replay(recorder.history)


def test_fit_with_a_noise_level_stops_after_the_discrepancy(head):
    crop = head[..., 64:128, 64:128].contiguous()
    sigma = 25 / 255 * float(crop.max() - crop.min())
    noisy = gaussian(crop, sigma, seed=0)
    res = medip.fit(Identity(), noisy, noise_level=sigma, max_steps=600, seed=0)
    floor = noise_floor(noisy, sigma) / res.scale ** 2
    reached = discrepancy_step(res.history["loss"], floor)
    assert reached < res.stop_step < res.steps_run
    shipped = make_stopper("wmv", 2, 128, floor=floor)
    steps = len(res.history["loss"])
    assert shipped.replay(res.history["variance"][:steps], res.history["loss"]) == res.stop_step
    public = stop_rule("auto", 2, measured=noisy, noise_level=sigma, scale=res.scale,
                       max_steps=600)  # the same rule, as fit builds it
    assert public.replay(res.history["variance"][:steps], res.history["loss"]) == res.stop_step


def test_noise_level_errors(head):
    crop = head[..., :32, :32].contiguous()
    with pytest.raises(InputError, match="noise_level must be"):
        medip.fit(Identity(), crop, noise_level=-1.0, max_steps=2)
    counts = medip.operators.poisson(torch.zeros(1, 1, 4, 32), 1e4)
    with pytest.raises(InputError, match="mse loss"):
        medip.fit(medip.operators.Radon((32, 32), 4), counts.sinogram,
                  loss=TransmissionPoisson.of(counts), noise_level=1.0, max_steps=2)


def test_denoise_and_inpaint_tasks_estimate_the_scan_noise(sample_dir):
    brain = medip.load(sample_dir / "mr_brain_t1_2mm.nii.gz")
    sigma = 0.05 * float(brain.array.max())
    noisy = brain.with_array(gaussian(torch.from_numpy(brain.array), sigma, seed=0).numpy())
    assert abs(Denoise(noisy).sigma / sigma - 1) < 0.1
    known = random_pixel_mask(brain.shape, 0.5, seed=0).numpy()
    assert abs(Inpaint(noisy, mask=known).sigma / sigma - 1) < 0.1
    problem = Denoise(noisy).problem((slice(0, 91), slice(0, 109), slice(40, 41)), 2)
    assert problem.sigma == Denoise(noisy).sigma


def test_the_poisson_floor_is_the_likelihood_of_the_truth(ct_mu_256):
    """The Poisson likelihood's floor (saturated loss + half a deviance unit per ray) is what
    the true line integrals give, and far below what a blank image gives."""
    from medip.operators import Radon, poisson

    radon = Radon((256, 256), 60, pixel_size=0.96)
    truth = radon(ct_mu_256)
    counts = poisson(truth, photons=1e4, seed=0)
    loss = TransmissionPoisson.of(counts)
    bound = loss.bind(1.0, torch.device("cpu"))
    floor = loss.floor(counts.sinogram, None, 1.0)
    at_truth, blank = float(bound(truth, None)), float(bound(torch.zeros_like(truth), None))
    assert abs(at_truth - floor) < 0.02 * (blank - floor), (at_truth, floor, blank)
    saturated = float(bound(counts.sinogram, None))
    assert saturated < floor < at_truth + 0.02 * (blank - floor)


def test_sinogram_noise_along_the_detectors_and_the_ct_task_carries_it(ct_mu_256):
    from medip.io import Sinogram
    from medip.operators import Radon, estimate_sigma_1d
    from medip.tasks import CT

    radon = Radon((256, 256), 90, pixel_size=0.96)
    sino = radon(ct_mu_256)
    sigma = 0.02 * float(sino.max())
    noisy = gaussian(sino, sigma, seed=0)
    assert abs(estimate_sigma_1d(noisy) / sigma - 1) < 0.15
    task = CT(Sinogram(noisy[0].numpy(), radon.geometry_dict()))
    assert task.sigma == pytest.approx(estimate_sigma_1d(noisy[0]))
    assert task.problem((slice(0, 1), slice(None), slice(None)), 0).sigma == task.sigma
    with pytest.raises(ValueError, match="at least 3 samples"):
        estimate_sigma_1d(torch.zeros(4, 2))


def test_a_weighted_mse_floor_is_the_noise_power_the_weight_leaves(ct_mu_256):
    from medip.engine.losses import MSE, make_loss, preconditioned
    from medip.operators import Radon

    radon = Radon((256, 256), 60, pixel_size=0.96)
    sino = radon(ct_mu_256)
    sigma = 0.01 * float(sino.max())
    loss = preconditioned(make_loss("mse"), radon)
    assert isinstance(loss, MSE) and loss.weight is not None
    noisy = [gaussian(sino, sigma, seed=seed) for seed in range(8)]
    bound = loss.bind(2.0, torch.device("cpu"))
    at_truth = sum(float(bound(sino / 2.0, y / 2.0)) for y in noisy) / len(noisy)
    assert loss.floor(noisy[0], sigma, 2.0) == pytest.approx(at_truth, rel=0.03)
    # only a plain mse takes the operator's weight; operators without one keep the plain loss
    poisson_loss = TransmissionPoisson(torch.ones(3), 10.0)
    assert preconditioned(poisson_loss, radon) is poisson_loss
    assert preconditioned(make_loss("l1"), radon).name == "l1"
    assert preconditioned(make_loss("mse"), Identity()).weight is None
