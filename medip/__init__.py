"""medip: Deep Image Prior reconstruction of medical images and volumes with automatic stopping."""

from ._version import __version__

__all__ = ["__version__"]
