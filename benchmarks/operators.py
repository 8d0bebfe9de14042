"""Operator speed against the reference implementations, in the same run (not a CI test).

Radon (issue 3): forward + adjoint on CPU for 256^2 and 512^2 (257 and 513, so both rotate about
the same centre) with 180 and 360 angles against scikit-image's radon + iradon (the
symmetry-reduced sparse-matrix path once built, its size and build time, the
interpolating path, and per slice when 16 slices go through at once), FBP against iradon, and the
sinogram's relative difference as the accuracy check. Fourier (issue 4): forward + adjoint for 320x320 with 16 coils and a 128^3 single-coil
volume against numpy's FFT. NUFFT (issue 20): forward + adjoint of a 256x256 image with 32 coils
on 400 golden-angle radial spokes x 256 samples (102k samples) against torchkbnufft (its
table-interpolation and sparse-matrix paths, when installed), with the relative difference as
the accuracy check. Frequency filters (the denoising fit's fine-detail weight, CT's ramp
preconditioner): forward + backward through autograd of
:class:`~medip.operators.spectral.FrequencyFilter` (the full complex FFT) against the real FFT
over half the spectrum, with the share of a default denoising fit's step the filter takes.
Run: ``python -m benchmarks.operators [radon] [fourier] [nufft] [filters]`` (the first three by
default).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from skimage.transform import iradon, radon

from .common import best_time, peak_rss_mb, write_results
from medip.operators import (NUFFT, DetectorFilter, Fourier, Identity, Radon, cartesian_mask,
                             golden_angle_radial)
from medip.operators.spectral import FrequencyFilter


def radon_rows() -> list[dict]:
    rows = []
    for n in (256, 512):
        yy, xx = np.mgrid[:n + 1, :n + 1] - n / 2
        image = ((yy ** 2 + xx ** 2) < (0.45 * n) ** 2) * (1 + 0.5 * np.sin(xx / 7) * np.cos(yy / 5))
        for angles in (180, 360):
            theta = np.arange(angles) * 180 / angles
            A = Radon((n + 1, n + 1), np.deg2rad(theta), matrix_after=0)
            interpolating = Radon((n + 1, n + 1), np.deg2rad(theta), matrix_bytes=0)
            x = torch.tensor(image, dtype=torch.float32)[None, None]
            start = time.perf_counter()
            sino = A(x)
            build = time.perf_counter() - start
            t_ours = best_time(lambda: A.H(A(x)), 2)
            t_interp = best_time(lambda: interpolating.H(interpolating(x)), 2)
            stack = x.expand(1, 1, 16, n + 1, n + 1).contiguous()
            t_stack = best_time(lambda: A.H(A(stack)), 1) / 16
            t_fbp = best_time(lambda: A.pinv(sino), 2)
            t_sk = best_time(lambda: radon(image, theta, circle=True), 1)
            sk_sino = radon(image, theta, circle=True)
            t_sk_fbp = best_time(lambda: iradon(sk_sino, theta, circle=True), 1)
            matrix = A._matrix(x)
            rel = float(np.linalg.norm(sino[0, 0].numpy().T - sk_sino) / np.linalg.norm(sk_sino))
            rows.append({"case": f"radon {n + 1}^2 x {angles}",
                         "path": "sparse matrix" if matrix is not None else "interpolation",
                         "matrix_mb": matrix.nbytes / 1e6 if matrix is not None else 0,
                         "build_s": build, "medip_fwd_adj_s": t_ours,
                         "interpolation_fwd_adj_s": t_interp, "per_slice_of_16_s": t_stack,
                         "skimage_radon_iradon_s": t_sk + t_sk_fbp,
                         "speedup_vs_skimage": (t_sk + t_sk_fbp) / t_ours,
                         "speedup_per_slice_of_16": (t_sk + t_sk_fbp) / t_stack,
                         "medip_fbp_s": t_fbp, "skimage_iradon_s": t_sk_fbp,
                         "speedup_fbp_vs_iradon": t_sk_fbp / t_fbp, "rel_diff": rel,
                         "peak_rss_mb": peak_rss_mb()})
            print(rows[-1], flush=True)
    return rows


def fourier_rows() -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    cases = [((320, 320), 16), ((128, 128, 128), None)]
    for shape, coils in cases:
        mask = cartesian_mask(shape, 4).mask
        sens = (torch.randn(coils, *shape, dtype=torch.complex64, generator=gen)
                if coils else None)
        A = Fourier(shape, mask, sens)
        x = torch.randn(1, 1, *shape, dtype=torch.complex64, generator=gen)
        t_ours = best_time(lambda: A.H(A(x)))
        xn, mn = x.numpy(), mask.numpy()
        sn = sens.numpy() if coils else None
        axes = tuple(range(-len(shape), 0))

        def numpy_pair():
            img = xn * sn if coils else xn
            k = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(img, axes=axes), axes=axes,
                                            norm="ortho"), axes=axes) * mn
            back = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(k, axes=axes), axes=axes,
                                                norm="ortho"), axes=axes)
            return (back * sn.conj()).sum(1, keepdims=True) if coils else back

        t_np = best_time(numpy_pair)
        err = float(np.abs(A.H(A(x)).numpy() - numpy_pair()).max())
        rows.append({"case": f"fourier {'x'.join(map(str, shape))}, {coils or 1} coil(s)",
                     "medip_fwd_adj_s": t_ours, "numpy_fwd_adj_s": t_np,
                     "speedup": t_np / t_ours, "max_abs_diff": err, "peak_rss_mb": peak_rss_mb()})
    return rows


def nufft_rows() -> list[dict]:
    shape, coils = (256, 256), 32
    gen = torch.Generator().manual_seed(0)
    trajectory = golden_angle_radial(400, 256)
    sens = torch.randn(coils, *shape, dtype=torch.complex64, generator=gen) / coils ** 0.5
    x = torch.randn(1, 1, *shape, dtype=torch.complex64, generator=gen)
    A = NUFFT(shape, trajectory, sens)
    ours = A.H(A(x))
    row = {"case": f"nufft 256^2, {coils} coils, {trajectory.shape[0] * trajectory.shape[1]} "
                   f"samples", "medip_finufft_fwd_adj_s": best_time(lambda: A.H(A(x)))}
    try:
        import torchkbnufft as tkbn
    except ImportError:
        print("torchkbnufft is not installed: its rows are left out")
    else:
        omega = (2 * np.pi * trajectory.reshape(-1, 2).T).contiguous()  # radians, (2, M)
        forward, adjoint = tkbn.KbNufft(im_size=shape), tkbn.KbNufftAdjoint(im_size=shape)
        interp = tkbn.calc_tensor_spmatrix(omega, im_size=shape)
        scale = float(np.sqrt(np.prod(shape)))  # torchkbnufft is unnormalised; ours is unitary
        image = x[0] * sens[None]  # (1, coils, H, W)

        def table():
            return adjoint(forward(image, omega), omega)

        def sparse():
            return adjoint(forward(image, omega, interp), omega, interp)

        theirs = (table() * sens.conj()[None]).sum(1, keepdim=True) / scale ** 2
        row.update(torchkbnufft_table_fwd_adj_s=best_time(table),
                   torchkbnufft_sparse_fwd_adj_s=best_time(sparse),
                   rel_diff=float((ours - theirs).norm() / theirs.norm()))
        row["speedup_vs_best_torchkbnufft"] = min(row["torchkbnufft_table_fwd_adj_s"],
                                                  row["torchkbnufft_sparse_fwd_adj_s"]) \
            / row["medip_finufft_fwd_adj_s"]
    row["peak_rss_mb"] = peak_rss_mb()
    return [row]


def _half_spectrum_filter(W: FrequencyFilter, y: torch.Tensor) -> torch.Tensor:
    """The candidate for real inputs: the real FFT over half the spectrum (the response is
    even, so its half is all it needs)."""
    sizes = tuple(W.response.shape)
    dims = tuple(range(-len(sizes), 0))
    half = W.response[..., :sizes[-1] // 2 + 1]
    filtered = torch.fft.irfftn(torch.fft.rfftn(y, s=sizes, dim=dims) * half, s=sizes, dim=dims)
    return filtered[(..., *(slice(0, n) for n in y.shape[-len(sizes):]))]


def filter_rows(rounds: int = 5, steps: int = 60) -> list[dict]:
    """Forward + backward (autograd) of the shipped filter and of the half-spectrum candidate,
    and the share of a default denoising fit's step (TV prior and fine-detail weight) that the
    filter takes, on the shapes fits run."""
    import medip
    from medip.engine.losses import detail_weight
    from medip.operators import estimate_sigma, gaussian

    rows = []
    cases = [(f"detail weight {n}^2", (1, 1, n, n)) for n in (128, 256, 512)]
    cases += [("detail weight 3x91x109 slab", (1, 3, 91, 109)),
              ("ramp preconditioner 60x363 sinogram", (1, 1, 60, 363))]
    for name, shape in cases:
        y = gaussian(torch.rand(shape), 0.1, seed=0)
        weighted = name.startswith("detail")
        W = detail_weight(y, estimate_sigma(y), 4.0) if weighted \
            else DetectorFilter.sqrt_ramp(shape[-2:])

        def step(apply):
            x = y.clone().requires_grad_(True)
            apply(x).square().sum().backward()

        times = {how: best_time(lambda a=apply: step(a), rounds)
                 for how, apply in (("shipped", W.forward),
                                    ("half", lambda x: _half_spectrum_filter(W, x)))}
        difference = float((W.forward(y) - _half_spectrum_filter(W, y)).abs().max()
                           / y.abs().max())
        row = {"case": name, "shipped (full spectrum) s": times["shipped"],
               "half spectrum s": times["half"], "half / shipped": times["half"] / times["shipped"],
               "max rel diff": difference}
        if weighted and shape[-1] <= 256:
            fit = medip.fit(Identity(), y, stopper=steps, max_steps=steps, detail=4.0, tv=4.0,
                            noise_level=estimate_sigma(y))
            row["fit step s"] = fit.seconds_per_step
            row["filter share of a step"] = times["shipped"] / fit.seconds_per_step
        rows.append(row)
        print(row, flush=True)
    return rows


if __name__ == "__main__":
    import sys

    torch.set_num_threads(2)
    chosen = sys.argv[1:] or ["radon", "fourier", "nufft"]
    if "radon" in chosen:
        radon_table = radon_rows()
        write_results("radon", radon_table, list(radon_table[0]))
    if "fourier" in chosen:
        write_results("fourier", fourier_rows(),
                      ["case", "medip_fwd_adj_s", "numpy_fwd_adj_s", "speedup", "max_abs_diff",
                       "peak_rss_mb"])
    if "nufft" in chosen:
        nufft_table = nufft_rows()
        write_results("nufft", nufft_table, list(nufft_table[0]))
    if "filters" in chosen:
        filter_table = filter_rows()
        write_results("filters", filter_table, list(filter_table[0]) + [
            column for column in filter_table[2] if column not in filter_table[0]])
