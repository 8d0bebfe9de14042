"""medip: Deep Image Prior reconstruction of medical images and volumes with automatic stopping."""

from . import metrics, noise, operators, stopping
from ._version import __version__
from .fit import Result, StepInfo, fit
from .io import Volume, load, save
from .reconstruct import VolumeResult, reconstruct_volume

__all__ = ["__version__", "fit", "Result", "StepInfo", "Volume", "VolumeResult", "load",
           "reconstruct_volume", "save", "metrics", "noise", "operators", "stopping"]
