"""Issue 19's scoreboard: medip's default against the classical methods users already run, on
the 40 images of the stopping test bed (4 real scans x 3 noise levels; denoising, 45-view CT,
4x MRI, 50 % inpainting; :mod:`benchmarks.stopbed`).

    python -m benchmarks.stopbed record      # once: the DIP traces (about an hour)
    python -m benchmarks.scoreboard          # the classical methods, and the table
    python -m benchmarks.scoreboard stored   # the table again, the classical figures as stored

medip's row is the image its shipped stop returns (the windowed variance after the task's
estimated noise floor, replayed with the library's own code on the recorded trace: the same
rule ``fit`` runs). The traces run 1500 steps, against ``fit``'s budget of 3000; where the rule
has not fired by then, the row takes the image at step 1500, so medip's figure is, if anything,
low. PSNR only: the traces keep no SSIM.

Each classical method runs as its users run it, with its parameter set by a rule they can
apply to the measurement alone (BM3D and NLM: the noise level scikit-image estimates; TV and
L1-wavelet: the discrepancy principle, :func:`medip.engine.solvers.discrepancy_weight`, at the
noise level medip's task estimates; NLM and TV denoising: scikit-image's self-supervised
calibration), and separately with the value that is best against the clean image (oracle: an
upper bound no user can reach).
"""

from __future__ import annotations

import json
import sys
from typing import Callable

import numpy as np
import torch

from medip.engine import solvers
from medip.engine.metrics import psnr

from .cases import _skimage, denoising_baselines
from .common import markdown_table, newest_rows, non_commercial, write_results
from .stopbed import Image
from .stopbed import estimated_sigma
from .stopbed_report import returned_psnr, shipped_rule, traces

#: PDHG / FISTA iterations of every regularised solve here (the issue's TV-CT baseline: 400).
ITERATIONS = 400
#: The oracle's weights: half-decade steps over six decades below ``max |A^H y|``.
ORACLE_WEIGHTS = [10 ** (k / 2) for k in range(-12, 1)]
#: The margin each task must win by over its best user-runnable method (issue 19).
MARGINS = {"denoise": 0.5, "ct": 1.0, "mri": 1.0, "inpaint": 0.0}


def _score(image: Image, x: torch.Tensor) -> float:
    return psnr(x.abs() if x.is_complex() else x, image.clean.abs())


def _oracle(image: Image, method: str) -> float:
    """The best PSNR of a regularised solve over :data:`ORACLE_WEIGHTS`."""
    solver = solvers.REGULARISED[method]
    back = image.operator.adjoint(image.y)
    top = float(back.abs().max())
    norm = solvers.operator_norm(image.operator, back)
    return max(_score(image, solver(image.operator, image.y, top * w, ITERATIONS, norm=norm))
               for w in ORACLE_WEIGHTS)


def _discrepancy(image: Image, method: str, sigma: float) -> float:
    x, _ = solvers.discrepancy_weight(image.operator, image.y, sigma, method,
                                      iterations=ITERATIONS)
    return _score(image, x)


def _denoise(image: Image, sigma: float) -> dict[str, float]:
    restoration, bm3d = _skimage(), non_commercial("bm3d")
    out = {name: _score(image, x) for name, x in denoising_baselines(image.y, image.clean).items()
           if name != "noisy input"}
    noisy = image.y[0, 0].double().numpy()
    estimated = float(restoration.estimate_sigma(noisy))
    for name, level in (("BM3D (estimated sigma)", estimated), ("BM3D (oracle: true sigma)",
                                                                image.sigma)):
        out[name] = _score(image, torch.from_numpy(bm3d.bm3d(noisy, level)).float()[None, None])
    return out


def _inpaint(image: Image, sigma: float) -> dict[str, float]:
    known = image.operator.mask.bool().numpy()
    filled = _skimage().inpaint_biharmonic(image.y[0, 0].double().numpy(), ~known)
    return {"biharmonic": _score(image, torch.from_numpy(filled).float()[None, None]),
            "TV (discrepancy)": _discrepancy(image, "tv", sigma),
            "TV (oracle weight)": _oracle(image, "tv")}


def _ct(image: Image, sigma: float) -> dict[str, float]:
    fbp = {f: _score(image, image.operator.pinv(image.y, filter=f))
           for f in ("ramp", "shepp-logan", "cosine", "hann")}
    best = max(fbp, key=fbp.get)
    return {"FBP ramp": fbp["ramp"], f"FBP (oracle filter: {best})": fbp[best],
            "TV (discrepancy)": _discrepancy(image, "tv", sigma),
            "TV (oracle weight)": _oracle(image, "tv")}


def _mri(image: Image, sigma: float) -> dict[str, float]:
    cg, _, _ = solvers.conjugate_gradient(image.operator, image.y, sigma)
    return {"zero-filled": _score(image, image.operator.pinv(image.y)),
            "CG (discrepancy)": _score(image, cg),
            "TV (discrepancy)": _discrepancy(image, "tv", sigma),
            "L1-wavelet (discrepancy)": _discrepancy(image, "wavelet", sigma),
            "TV (oracle weight)": _oracle(image, "tv"),
            "L1-wavelet (oracle weight)": _oracle(image, "wavelet")}


BASELINES: dict[str, Callable[[Image, float], dict[str, float]]] = {
    "denoise": _denoise, "inpaint": _inpaint, "ct": _ct, "mri": _mri}


def _is_oracle(name: str) -> bool:
    return "oracle" in name


def main(stored: bool = False) -> None:
    """The scoreboard; ``stored``: the classical methods' figures from the newest stored
    scoreboard (they are deterministic and do not depend on medip), medip's from the traces, for
    a re-recorded trace in seconds instead of the baselines' half hour."""
    previous = newest_rows("scoreboard") if stored else {}
    rows = []
    for image, scale, loss, variance, psnrs in traces():
        sigma = estimated_sigma(image)
        medip = returned_psnr(psnrs, shipped_rule(image, scale, sigma).replay(variance, loss))
        methods = (previous[image.name]["methods"] if stored
                   else BASELINES[image.task](image, sigma))
        user = max((k for k in methods if not _is_oracle(k)), key=methods.get)
        oracle = max(methods, key=methods.get)
        rows.append({"image": image.name, "task": image.task, "medip": medip,
                     "best user-runnable": user, "its psnr": methods[user],
                     "medip - it": medip - methods[user], "best oracle": oracle,
                     "oracle psnr": methods[oracle], "medip - oracle": medip - methods[oracle],
                     "methods": methods})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "methods"}), flush=True)
    summary = {}
    for task, margin in MARGINS.items():
        gaps = np.array([r["medip - it"] for r in rows if r["task"] == task])
        summary[task] = {"images": len(gaps), "median": float(np.median(gaps)),
                         "worst": float(gaps.min()), "best": float(gaps.max()),
                         "won": int((gaps > 0).sum()), "target_margin": margin,
                         "met_target": int((gaps >= margin).sum())}
    lines = ["| task | images | medip - best user-runnable: median | worst | best | medip ahead "
             "| ahead by the target margin |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {t} | {s['images']} | {s['median']:+.2f} dB | {s['worst']:+.2f} | "
              f"{s['best']:+.2f} | {s['won']} | {s['met_target']} (+{s['target_margin']} dB) |"
              for t, s in summary.items()]
    columns = ["image", "medip", "best user-runnable", "its psnr", "medip - it", "best oracle",
               "oracle psnr", "medip - oracle"]
    text = "\n".join(lines) + "\n\n" + "\n".join(markdown_table(rows, columns)) + "\n"
    write_results("scoreboard", rows, columns, {"summary": summary}, text=text)


if __name__ == "__main__":
    main(sys.argv[1:2] == ["stored"])
