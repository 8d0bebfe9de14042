"""CT: the Radon operator against scikit-image, exact adjoints, FBP, noise and sinogram files."""

import json
import math

import numpy as np
import pytest
import torch
from skimage.transform import iradon, radon

from medip.tasks import hu_to_mu, mu_to_hu
from medip.io import load_sinogram, save_sinogram
from medip.engine.losses import poisson_nll
from medip.operators import gaussian, poisson
from medip.operators import Radon

from medip.operators.testing import dot_test

from conftest import fov_circle, psnr_np


PATHS = {"sparse matrix": {"matrix_after": 0}, "interpolation": {"matrix_bytes": 0}}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("geometry", ["parallel", "fan"])
def test_adjoint_is_exact_in_2d_and_3d(geometry, path):
    A = Radon((24, 28), 17, geometry, **PATHS[path])
    gen = torch.Generator().manual_seed(0)
    assert dot_test(A, torch.randn(2, 1, 24, 28, generator=gen)) < 1e-5
    assert dot_test(A, torch.randn(1, 1, 3, 24, 28, generator=gen)) < 1e-5
    assert dot_test(A, torch.randn(1, 1, 24, 28, generator=gen, dtype=torch.float64)) < 1e-12


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("geometry", ["parallel", "fan"])
def test_adjoint_is_differentiable(geometry, path):
    A = Radon((6, 6), 4, geometry, step=0.7, **PATHS[path])
    y = torch.randn(1, 1, *A.out_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(A.H, (y,))
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(A, (x,))


# shape, angles, and the most rows the symmetry-reduced matrix may store, as a share of all rays,
# for parallel and fan beam (a quarter turn, mirrors and, for parallel beam, the half turn that
# flips the detector each divide the rows; views and detectors on a mirror axis stay single)
SYMMETRY_CASES = {
    "square, 16 uniform views": ((20, 20), 16, {"parallel": 1 / 6, "fan": 1 / 6}),
    "odd view count": ((21, 21), 9, {"parallel": 1 / 3, "fan": 1 / 1.9}),
    "non-square": ((18, 22), 12, {"parallel": 1 / 3, "fan": 1 / 3}),
    "random angles": ((20, 20), torch.rand(7, generator=torch.Generator().manual_seed(3)) * 3,
                      {"parallel": 1 / 1.9, "fan": 1}),
}


@pytest.mark.parametrize("case", SYMMETRY_CASES)
@pytest.mark.parametrize("geometry", ["parallel", "fan"])
def test_sparse_matrix_and_interpolation_agree(geometry, case):
    shape, angles, share = SYMMETRY_CASES[case]
    matrix = Radon(shape, angles, geometry, **PATHS["sparse matrix"])
    interpolation = Radon(shape, angles, geometry, **PATHS["interpolation"])
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 1, *shape, generator=gen), torch.rand(2, 1, *matrix.out_shape, generator=gen)
    torch.testing.assert_close(matrix(x), interpolation(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(matrix.H(y), interpolation.H(y), rtol=1e-5, atol=1e-5)
    assert interpolation._matrix(x) is None
    stored = matrix._matrix(x).matrix.shape[0]
    assert stored <= share[geometry] * matrix.out_shape[0] * matrix.out_shape[1]


def test_sparse_matrix_is_built_on_the_fourth_application():
    default, x = Radon((20, 20), 9), torch.rand(1, 1, 20, 20)
    assert [default._matrix(x) is None for _ in range(4)] == [True, True, True, False]


def test_repeated_angles_add_up_in_the_adjoint():
    A = Radon((16, 16), [0.3, 0.3, 1.1], matrix_after=0)
    assert dot_test(A, torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))) < 1e-5


def test_volume_is_projected_slice_by_slice():
    A = Radon((16, 16), 10)
    vol = torch.randn(1, 1, 3, 16, 16)
    sino = A(vol)
    assert sino.shape == (1, 1, 3, 10, 16)
    torch.testing.assert_close(sino[:, :, 1], A(vol[:, :, 1]))


@pytest.fixture(scope="module")
def odd_slice(ct_mu_256):
    """The 256x256 slice padded to 257 so scikit-image's rotation centre (N // 2) is the true centre."""
    img = torch.nn.functional.pad(ct_mu_256, (0, 1, 0, 1))
    return img * fov_circle(257)


def test_parallel_sinogram_matches_scikit_image(odd_slice):
    theta = np.arange(360) * 0.5
    ref = radon(odd_slice[0, 0].double().numpy(), theta, circle=True)  # (n_det, n_angles)
    ours = Radon((257, 257), np.deg2rad(theta))(odd_slice)[0, 0].double().numpy().T
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) <= 0.02


def test_fbp_matches_scikit_image_iradon(odd_slice):
    theta = np.arange(360) * 0.5
    A = Radon((257, 257), np.deg2rad(theta))
    sino = A(odd_slice)
    truth = odd_slice[0, 0].numpy()
    inside = fov_circle(257, 126).bool().numpy()
    ours = psnr_np(A.pinv(sino)[0, 0].numpy(), truth, inside)
    ref = psnr_np(iradon(sino[0, 0].double().numpy().T, theta, circle=True, filter_name="ramp"),
                  truth, inside)
    assert ours >= ref - 0.5


def test_fbp_reproduces_the_real_slice(ct_mu_256):
    inside = fov_circle(256, 126).bool().numpy()
    truth = ct_mu_256[0, 0].numpy()
    parallel = Radon((256, 256), 360)
    assert psnr_np(parallel.pinv(parallel(ct_mu_256))[0, 0].numpy(), truth, inside) >= 35
    fan = Radon((256, 256), 360, "fan")
    assert psnr_np(fan.pinv(fan(ct_mu_256))[0, 0].numpy(), truth, inside) >= 33
    windows = [psnr_np(parallel.pinv(parallel(ct_mu_256), filter=f)[0, 0].numpy(), truth, inside)
               for f in ("shepp-logan", "cosine", "hann")]
    assert all(p > 30 for p in windows) and windows[0] > windows[-1]  # smoother = blurrier


def test_pixel_size_gives_physical_line_integrals():
    # A uniform water disc of diameter 100 mm: the central ray crosses 100 mm of water.
    n, pixel = 128, 1.0
    disc = fov_circle(n, 50).reshape(1, 1, n, n) * hu_to_mu(torch.tensor(0.0))
    sino = Radon((n, n), 4, pixel_size=pixel)(disc)
    centre = sino[0, 0, :, n // 2 - 1: n // 2 + 1].mean()
    assert abs(float(centre) - 100 * 0.01929) < 0.02
    coarse = Radon((n, n), 4, pixel_size=2.0)(disc)  # same pixels, twice as large
    torch.testing.assert_close(coarse, 2 * sino)


def test_hu_mu_round_trip_and_fov_padding():
    hu = torch.tensor([-4000.0, -1000.0, 0.0, 1000.0])
    mu = hu_to_mu(hu)
    assert mu[0] == 0 and mu[1] == 0 and abs(float(mu[2]) - 0.01929) < 1e-7
    torch.testing.assert_close(mu_to_hu(mu)[1:], hu[1:])


def test_noise_models_are_seeded_and_physical():
    p = torch.linspace(0, 4, 1000).reshape(1, 1, 10, 100)
    a, b = poisson(p, photons=1e4, seed=3), poisson(p, photons=1e4, seed=3)
    assert torch.equal(a.sinogram, b.sinogram) and a.photons == 1e4
    assert not torch.equal(a.sinogram, poisson(p, photons=1e4, seed=4).sinogram)
    assert torch.isfinite(poisson(p + 30, photons=10).sinogram).all()  # photon starvation
    assert abs(float((a.counts / (1e4 * torch.exp(-p))).mean()) - 1) < 0.01
    assert poisson_nll(p, a.counts, a.photons) < poisson_nll(p + 0.3, a.counts, a.photons)
    g = gaussian(torch.zeros(1, 1, 100, 100), 0.5, seed=1)
    assert abs(float(g.std()) - 0.5) < 0.02 and torch.equal(g, gaussian(torch.zeros_like(g), 0.5, 1))
    with pytest.raises(ValueError, match="photons"):
        poisson(p, photons=0)


def test_sinogram_files_round_trip(tmp_path):
    A = Radon((32, 32), 12, "fan", pixel_size=0.5)
    sino = A(torch.rand(1, 1, 32, 32))[0, 0]
    for name in ("s.npy", "s.tiff"):
        path = save_sinogram(tmp_path / name, sino, A)
        loaded = load_sinogram(path)
        np.testing.assert_allclose(loaded.data, sino.numpy()[None])  # a stack of one slice
        B = Radon.from_geometry(loaded.geometry)
        assert (B.geometry, B.n_detectors, B.pixel_size) == ("fan", A.n_detectors, 0.5)
        torch.testing.assert_close(B.angles, A.angles)
        (tmp_path / "s.json").unlink()
    with pytest.raises(FileExistsError):
        save_sinogram(tmp_path / "t.npy", sino, A)
        save_sinogram(tmp_path / "t.npy", sino, A)


def test_sinogram_shape_disagreeing_with_geometry_is_an_error(tmp_path):
    A = Radon((32, 32), 12)
    save_sinogram(tmp_path / "s.npy", A(torch.rand(1, 1, 32, 32)), A)
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["angles"] = doc["angles"][:10]
    (tmp_path / "s.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"disagrees with its geometry \(10 angles x 32"):
        load_sinogram(tmp_path / "s.npy")
    with pytest.raises(FileNotFoundError, match="sidecar"):
        np.save(tmp_path / "lonely.npy", np.zeros((3, 3)))
        load_sinogram(tmp_path / "lonely.npy")


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="number of angles must be positive"):
        Radon((16, 16), 0)
    with pytest.raises(ValueError, match="number of angles must be positive"):
        Radon((16, 16), -3)
    with pytest.raises(ValueError, match="do not cover"):
        Radon((64, 64), 10, n_detectors=20)
    with pytest.raises(ValueError, match="geometry must be"):
        Radon((16, 16), 10, geometry="cone")
    A = Radon((16, 16), 10)
    with pytest.raises(ValueError, match="y contains NaN"):
        A.pinv(torch.full((1, 1, 10, 16), float("nan")))
    with pytest.raises(ValueError, match="trailing"):
        A(torch.zeros(1, 1, 16, 15))
    with pytest.raises(ValueError, match="unknown filter"):
        A.pinv(torch.zeros(1, 1, 10, 16), filter="butterworth")


def test_non_square_images_use_the_inscribed_circle():
    A = Radon((20, 32), 8)
    assert A.n_detectors == 20 and A(torch.ones(1, 1, 20, 32)).shape == (1, 1, 8, 20)
    assert math.isclose(A.fov_radius, 9.5)


def test_the_preconditioner_is_self_adjoint_and_the_square_root_of_fbps_ramp():
    from medip.operators.ramp import padded_size, ramp_response

    A = Radon((40, 40), 20, "fan")
    W = A.preconditioner()
    assert W.in_shape == W.out_shape == A.out_shape and (2.0 * A).preconditioner() is not None
    assert dot_test(W, torch.randn(2, 1, *A.out_shape, dtype=torch.float64)) < 1e-12
    ramp = ramp_response(padded_size(A.n_detectors)).float()
    ratio = W.response.square()[ramp > 1e-3] / ramp[ramp > 1e-3]
    assert float(ratio.std() / ratio.mean()) < 1e-5
    with pytest.raises(ValueError, match="detectors need"):
        type(W)(A.out_shape, W.response[:10])


def test_preconditioning_evens_out_the_normal_operator_over_frequencies():
    """``A^T A`` damps a fine pattern against a coarse one by about their frequency ratio; with
    the square-root ramp weight ``A^T W^2 A`` treats them alike (what lets a fit learn detail
    as fast as shape)."""
    A = Radon((64, 64), 64)
    W = A.preconditioner()
    c = torch.arange(64.0) - 31.5
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    window = torch.exp(-(yy ** 2 + xx ** 2) / 12 ** 2)

    def gain(x: torch.Tensor, weighted: bool) -> float:
        Ax = A(x[None, None])
        return float((W(Ax) if weighted else Ax).square().sum() / x.square().sum())

    coarse, fine = (window * torch.cos(2 * math.pi * f * xx / 64) for f in (2, 16))
    plain = gain(coarse, False) / gain(fine, False)
    weighted = gain(coarse, True) / gain(fine, True)
    assert plain > 4 and 0.5 < weighted < 2, (plain, weighted)
