"""Adapters to other frameworks (:mod:`.monai`: a MONAI dictionary transform)."""
