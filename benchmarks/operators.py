"""Operator speed against the reference implementations, in the same run (not a CI test).

Radon (issue 3): forward + adjoint on CPU for 256^2 and 512^2 (257 and 513, so both rotate about
the same centre) with 180 and 360 angles against scikit-image's radon + iradon (the
symmetry-reduced sparse-matrix path once built, its size and build time, the
interpolating path, and per slice when 16 slices go through at once), FBP against iradon, and the
sinogram's relative difference as the accuracy check. Fourier (issue 4): forward + adjoint for 320x320 with 16 coils and a 128^3 single-coil
volume against numpy's FFT. Run: ``python -m benchmarks.operators``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from skimage.transform import iradon, radon

from .common import best_time, peak_rss_mb, write_results
from medip.operators import Fourier, Radon, cartesian_mask


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


if __name__ == "__main__":
    torch.set_num_threads(2)
    radon_table = radon_rows()
    write_results("radon", radon_table, list(radon_table[0]))
    write_results("fourier", fourier_rows(),
                  ["case", "medip_fwd_adj_s", "numpy_fwd_adj_s", "speedup", "max_abs_diff",
                   "peak_rss_mb"])
