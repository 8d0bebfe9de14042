"""A stop request that every running fit honours at its next step: from a signal handler, or
from another thread of a pipeline.

A signal handler that raises ``KeyboardInterrupt`` (how the command line turns SIGTERM into a
clean stop) loses it when the signal lands while Python runs a finaliser (``__del__``): Python
prints "Exception ignored" and the work runs on, a batch for hours. The handler here also sets
a flag that is never lost: :func:`medip.fit` checks it before every step and stops as on Ctrl-C
(it returns its best image so far, marked interrupted, or raises ``KeyboardInterrupt`` before it
has one), and the batch loop checks it between jobs. ``KeyboardInterrupt`` itself reaches only
the main thread; :func:`request_stop` reaches fits in every thread.

This module imports nothing heavy, so the command line installs its handler before torch loads.
"""

from __future__ import annotations

import threading
from types import FrameType

_REQUESTED = threading.Event()


def request_stop() -> None:
    """Ask every fit of this process, running now or started later, to stop at its next step,
    until :func:`clear_stop`."""
    _REQUESTED.set()


def clear_stop() -> None:
    """Withdraw a :func:`request_stop`: later fits run again."""
    _REQUESTED.clear()


def raise_if_stop_requested() -> None:
    """Raise ``KeyboardInterrupt`` where a stop was requested (the loops' check)."""
    if _REQUESTED.is_set():
        raise KeyboardInterrupt


def stop_on_signal(signum: int, frame: FrameType | None) -> None:
    """A signal handler (SIGTERM from a scheduler or ``kill``, Ctrl-C) that stops the work as
    Ctrl-C does, even where its ``KeyboardInterrupt`` is lost in a finaliser."""
    request_stop()
    raise KeyboardInterrupt
