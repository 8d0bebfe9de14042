"""A per-step progress bar callback for :func:`medip.fit` (tqdm on a terminal, quiet elsewhere)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from .fit import StepInfo


class ProgressBar:
    """Shows steps, loss and output variance; closes itself on the last step it sees."""

    def __init__(self, total: int, description: str = "DIP", enabled: bool | None = None) -> None:
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(total=total, desc=description, unit="step", disable=not enabled,
                        leave=False)

    def __call__(self, info: StepInfo) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{info.loss:.3g}", var=f"{info.variance:.3g}", refresh=False)

    def close(self) -> None:
        self.bar.close()
