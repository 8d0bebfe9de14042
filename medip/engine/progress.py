"""Progress bars (tqdm on a terminal, quiet elsewhere): per step of :func:`medip.fit`, or per
slice / patch of a volume."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from .fitting import StepInfo


def progress_bar(total: int, description: str, enabled: bool | None = None, unit: str = "step"
                 ) -> tqdm:
    """A transient tqdm bar; ``enabled=None`` shows it only when stderr is a terminal."""
    enabled = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=description, unit=unit, disable=not enabled, leave=False)


class ProgressBar:
    """A :func:`medip.fit` callback showing steps, loss and output variance."""

    def __init__(self, total: int, description: str = "DIP", enabled: bool | None = None) -> None:
        self.bar = progress_bar(total, description, enabled)

    def __call__(self, info: StepInfo) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{info.loss:.3g}", var=f"{info.variance:.3g}", refresh=False)

    def close(self) -> None:
        self.bar.close()
