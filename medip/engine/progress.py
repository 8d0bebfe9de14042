"""Progress on long work: a tqdm bar on a terminal, and where there is none (a cluster job's
log, ``nohup``) a log line every :data:`LOG_EVERY` seconds with the count, the elapsed and the
estimated remaining time and the latest loss and variance; per step of :func:`medip.fit`, or per
slice / patch of a volume."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm.auto import tqdm

from .fitting import StepInfo

#: Seconds between progress lines when stderr is not a terminal.
LOG_EVERY = 30.0
log = logging.getLogger("medip")


class LogProgress:
    """A tqdm stand-in that writes a progress line to the ``medip`` logger now and then."""

    def __init__(self, total: int, description: str, unit: str, every: float = LOG_EVERY
                 ) -> None:
        self.total, self.description, self.unit, self.every = total, description, unit, every
        self.count, self.postfix = 0, ""
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        elapsed = now - self.start
        left = elapsed / max(self.count, 1) * max(self.total - self.count, 0)
        extra = f", {self.postfix}" if self.postfix else ""
        return (f"{self.description}: {self.unit} {self.count}/{self.total}, {elapsed:.0f} s "
                f"elapsed, at most about {left:.0f} s left{extra}")

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass


def progress_bar(total: int, description: str, enabled: bool | None = None, unit: str = "step"
                 ) -> tqdm | LogProgress:
    """A transient tqdm bar on a terminal; ``enabled=None`` without a terminal logs lines
    instead (:class:`LogProgress`); ``enabled=False`` shows nothing."""
    if enabled is None:
        if not sys.stderr.isatty():
            return LogProgress(total, description, unit)
        enabled = True
    return tqdm(total=total, desc=description, unit=unit, disable=not enabled, leave=False)


class ProgressBar:
    """A :func:`medip.fit` callback showing steps, loss and output variance."""

    def __init__(self, total: int, description: str = "DIP", enabled: bool | None = None) -> None:
        self.bar = progress_bar(total, description, enabled)

    def __call__(self, info: StepInfo) -> None:
        self.bar.set_postfix(loss=f"{info.loss:.3g}", var=f"{info.variance:.3g}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
