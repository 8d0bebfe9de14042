"""medip: Deep Image Prior reconstruction of medical images and volumes with automatic stopping.

The public names load on first use (``medip.fit`` imports torch then), so that ``import medip``
and ``medip --help`` stay fast.
"""

from __future__ import annotations

from ._lazy import lazy_attributes
from ._version import __version__

_WHERE = {"fit": "engine.fitting", "Result": "engine.fitting", "StepInfo": "engine.fitting",
          "Volume": "io", "load": "io", "save": "io", "Sinogram": "io", "KSpace": "io",
          "VolumeResult": "reconstruct", "FitStart": "reconstruct",
          "reconstruct_volume": "reconstruct",
          "MedipError": "errors"}
_WHERE.update({name: name for name in ("defaults", "engine", "errors", "io", "operators",
                                          "tasks", "app", "integrations")})
__all__ = ["__version__", *_WHERE]

__getattr__ = lazy_attributes(__name__, _WHERE, globals())
