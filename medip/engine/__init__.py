"""The DIP engine: generators (:mod:`.nets`), stopping rules (:mod:`.stopping`), losses and
regularisers (:mod:`.losses`), the fitting loop (:mod:`.fit`), memory/time estimates, progress
bars, metrics and device choice. It knows no modality and no file format."""

from .fitting import COLD_MIN_STEPS, REG_NOISE, RESIDUAL_MIN_STEPS, Result, StepInfo, fit
from .losses import L1, MSE, Loss, TransmissionPoisson

__all__ = ["COLD_MIN_STEPS", "L1", "MSE", "Loss", "REG_NOISE", "RESIDUAL_MIN_STEPS", "Result",
           "StepInfo", "TransmissionPoisson", "fit"]
