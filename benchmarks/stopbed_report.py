"""The stopping test bed's report: each stop rule's PSNR gap on the recorded traces.

``python -m benchmarks.stopbed report`` after ``record``. Rules, each replayed with the library's
own code on the recorded per-step loss and variance (see :mod:`benchmarks.stopbed`):

- ``variance``: the shipped ES-WMV rule (minimum step, patience) as ``fit`` ran it so far.
- ``discrepancy``: the first step whose smoothed data loss falls to the noise floor, from the
  true noise level and from the one medip's task estimates from the measurement alone
  (denoising, inpainting: ``estimate_sigma``; CT: ``estimate_sigma_1d`` along the detectors;
  MRI: the k-space edge, ``kspace_noise_level``).
- ``variance after discrepancy``: the variance rule with no candidate before that step, the rule
  ``fit`` runs when it is given a noise level (the default now).

A rule that has not fired by the end of a trace returns the image at its end, as ``fit`` does
at its step budget.
"""

from __future__ import annotations

import json
from typing import Iterator

import numpy as np
from medip.engine.fitting import minimum_stop_step, stop_rule
from medip.engine.losses import make_loss, preconditioned
from medip.engine.stopping import WindowedVariance, discrepancy_step

from .common import markdown_table, write_results
from .stopbed import TRACES, Image, estimated_sigma, images


#: The minimum stop step of the test bed's fits (cold, at ``fit``'s budget of 3000 steps).
MIN_STEPS = minimum_stop_step(False, 3000)


def shipped_rule(image, scale: float, sigma: float | None = None) -> WindowedVariance:
    """The rule ``fit`` runs on a test-bed image: the windowed variance with its minimum step,
    after the noise floor of ``sigma`` (default: the level the task estimates) that ``fit``'s
    data term leaves (the residual weighted by the operator's preconditioner, as ``fit`` runs
    it; the traces are recorded so)."""
    sigma = estimated_sigma(image) if sigma is None else sigma
    return stop_rule("auto", 2, loss=preconditioned(make_loss("mse"), image.operator),
                     measured=image.y, noise_level=sigma, scale=scale)


def returned_psnr(psnrs: np.ndarray, step: int) -> float:
    """The PSNR of the image a rule returns at ``step`` on a trace (its end when the rule
    has no candidate, -1, or stops past the trace), as ``fit`` returns at its step budget."""
    last = len(psnrs) - 1
    return float(psnrs[last if step < 0 else min(step, last)])


def _gap(psnrs: np.ndarray, step: int) -> float:
    return float(psnrs.max()) - returned_psnr(psnrs, step)


def traces() -> Iterator[tuple[Image, float, np.ndarray, np.ndarray, np.ndarray]]:
    """Each test-bed image with its recorded trace (``stopbed record``): the image, the fit's
    scale, and the per-step loss, variance and PSNR."""
    data = np.load(TRACES)
    meta = json.loads(str(data["meta"]))
    for image, info in zip(images(), meta):
        loss, variance, psnrs = data[info["key"]]
        yield image, info["scale"], loss, variance, psnrs


def report() -> None:
    rows = []
    for image, scale, loss, variance, psnrs in traces():
        shipped = WindowedVariance(min_steps=MIN_STEPS)
        before = shipped.replay(variance)
        row = {"image": image.name, "task": image.task, "best": float(psnrs.max()),
               "best_step": int(psnrs.argmax()), "step_before": before,
               "variance": _gap(psnrs, before)}
        estimates = {"true": image.sigma, "estimated": estimated_sigma(image)}
        for which, sigma in estimates.items():
            rule = shipped_rule(image, scale, sigma)
            crossing = discrepancy_step(loss, rule.watch.floor)
            row[f"discrepancy ({which})"] = _gap(psnrs, crossing)
            now = rule.replay(variance, loss)
            row[f"variance after discrepancy ({which})"] = _gap(psnrs, now)
            if which == "estimated":
                row["step_now"] = now if now >= 0 else len(psnrs) - 1
        rows.append(row)
    facts = ("image", "task", "best", "best_step", "step_before", "step_now")
    rules = [k for r in rows for k in r if k not in facts]
    summary = {}
    for rule in dict.fromkeys(rules):
        gaps = np.array([r[rule] for r in rows if rule in r])
        summary[rule] = {"images": len(gaps), "median": float(np.median(gaps)),
                         "p90": float(np.percentile(gaps, 90)), "worst": float(gaps.max())}
    lines = ["| rule | images | median gap (dB) | 90th percentile | worst |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['images']} | {v['median']:.2f} | {v['p90']:.2f} | {v['worst']:.2f} |"
              for k, v in summary.items()]
    columns = ["image", "best", "best_step", "step_before", "step_now", *dict.fromkeys(rules)]
    text = "\n".join(lines) + "\n\n" + "\n".join(markdown_table(rows, columns)) + "\n"
    write_results("stopbed", rows, columns, {"summary": summary}, text=text)


if __name__ == "__main__":
    report()
