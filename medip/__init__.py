"""medip: Deep Image Prior reconstruction of medical images and volumes with automatic stopping."""

from . import metrics, noise, operators, stopping
from ._version import __version__
from .fit import Result, StepInfo, fit

__all__ = ["__version__", "fit", "Result", "StepInfo", "metrics", "noise", "operators", "stopping"]
