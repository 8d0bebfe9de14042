"""medip's exceptions: every one is a :class:`MedipError`, which the command line prints as one
line (the message names the file or option and the fix); each also derives from the built-in
type a Python caller would expect (``ValueError``, ``ImportError``, ...)."""

from __future__ import annotations


class MedipError(Exception):
    """Base of medip's own errors."""


class InputError(MedipError, ValueError):
    """A scan, measurement or option that medip cannot use as given."""


class MissingExtra(MedipError, ImportError):
    """An optional dependency is not installed; the message says which ``pip install``."""


class OutputError(MedipError, OSError):
    """An output that cannot be written (disk full, read-only or forbidden folder); nothing
    half-written is left behind."""


class OutOfMemory(MedipError, MemoryError):
    """A reconstruction needs (or ran out of) more memory than the device has; the message
    names the mode or option that would fit."""


class FitDiverged(MedipError, FloatingPointError):
    """The loss became NaN or infinite during a fit."""
