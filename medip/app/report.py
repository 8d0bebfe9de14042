"""Figures for a job (``--report``): loss and output variance per step with the detected stop
marked (PSNR too when a reference was logged), and a before/after picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..reconstruct import VolumeResult

from ..io import atomic_write
from ..io.api import derived_path
from ..io.preview import default_window, display_slice, window_to_uint8


def _pyplot():
    """pyplot on the non-interactive Agg backend (works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: dict, stop_step: int, path: Path, title: str = "",
                 overwrite: bool = False) -> Path:
    """Loss and variance (log scale) against the step, the stop as a vertical line."""
    plt = _pyplot()
    panels = 3 if history.get("psnr") else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), constrained_layout=True)
    for ax, key, label in zip(axes, ("loss", "variance", "psnr"),
                              ("data loss", "output variance", "PSNR (dB)")):
        values = np.asarray(history[key], dtype=float)
        ax.plot(np.arange(len(values)), values, lw=1)
        if key != "psnr":
            ax.set_yscale("log")
        ax.axvline(stop_step, color="tab:red", ls="--", lw=1, label=f"stop {stop_step}")
        ax.set_xlabel("step")
        ax.set_title(label)
    axes[0].legend(loc="upper right")
    if title:
        fig.suptitle(title)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110), overwrite)
    finally:
        plt.close(fig)


def before_after(before, after, path: Path, window: tuple[float, float] | None = None,
                 overwrite: bool = False) -> Path:
    """The middle slice of the measurement and of the result, titled, in one window."""
    plt = _pyplot()
    k = after.shape[2] // 2
    shown = [display_slice(v, min(k, v.shape[2] - 1)) for v in (before, after)]
    pixels = [window_to_uint8(p, window) for p in shown]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3), constrained_layout=True)
    for ax, image, title in zip(axes, pixels, ("input", "medip")):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title)
        ax.axis("off")
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110), overwrite)
    finally:
        plt.close(fig)


def write_report(result: VolumeResult, output: Path, overwrite: bool = False) -> list[Path]:
    """``<name>_curves.png`` (of the middle slice's or the 3D fit) and ``<name>_before_after.png``."""
    middle = len(result.histories) // 2
    return [plot_history(result.histories[middle], result.stop_steps[middle],
                         derived_path(output, "curves", ".png"), overwrite=overwrite),
            before_after(result.measured, result.volume,
                         derived_path(output, "before_after", ".png"),
                         default_window(result.volume), overwrite)]
