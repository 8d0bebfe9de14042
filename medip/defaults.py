"""The defaults that several layers show (the Python API, the job options, the CLI help).

Each has one owner, here; this module imports nothing, so ``medip --help`` can read it without
loading torch. Tuned constants that only one module uses (the stopping rules' minimum steps, the
input noise) stay with that module and cite the measurement behind them.
"""

#: Step budget of one cold fit.
MAX_STEPS = 3000
#: Step budget of a fit warm-started from its neighbour's weights (slices, patches), capped at
#: ``MAX_STEPS``: the volume benchmarks' figures (benchmarks/results/2026-11-23-vm.md) were
#: measured with it.
WARM_STEPS = 500
#: Generator preset (``medip.engine.nets.PRESETS``); see that module for why ``fast``.
PRESET = "fast"
PRESET_NAMES = ("fast", "skip", "skip-paper", "decoder")
#: ``auto``: ES-WMV in 2D, ES-EMV in 3D (``medip.engine.stopping.make_stopper``).
STOPPER = "auto"
STOPPER_NAMES = ("auto", "wmv", "emv")
SEED = 0
DEVICE = "auto"
ENSEMBLE = 1
#: Volume strategies of ``medip.reconstruct_volume``.
MODES = ("slices", "3d", "patches")
MODE = "slices"
#: Patch edge and overlap (voxels) for ``mode="patches"``.
PATCH = 64
OVERLAP = 16
#: Super-resolution anti-alias kernel and factor (in-plane).
KERNEL = "bicubic"
FACTOR = 2
#: MRI retrospective undersampling: fully sampled centre fraction (the fastMRI convention).
CENTER_FRACTION = 0.08
#: Simulation defaults (``medip simulate``).
SIM_SIGMA = 25 / 255
SIM_MISSING = 0.5
SIM_ANGLES = 60
SIM_PHOTONS = 1e4
SIM_ACCELERATION = 4.0
SIM_COILS = 8
SIMULATIONS = ("noise", "mask", "downsample", "ct", "mri")

# Reconstruction methods: the DIP, and the classical ones medip ships for comparison
# (medip.engine.solvers: CG-SENSE, TV and L1-wavelet compressed sensing, weights by the
# discrepancy principle). Tasks list the ones they offer in their spec.
METHOD = "dip"
METHODS = ("dip", "sense", "tv", "wavelet")
# MRI coil maps (medip.tasks.mri; auto: ESPIRiT where its calibration matrix is overdetermined,
# else the ratio method) and the part of the complex image written.
MRI_MAPS = ("auto", "espirit", "ratio")
MRI_PARTS = ("magnitude", "phase", "complex")
