"""The options of a reconstruction job and their precedence: the defaults here (each read from
its owner, :mod:`medip.defaults` or the task's spec), then a TOML config file, then the flags
on the command line. Options that the job's task does not use are refused, not ignored."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import InputError
from ..tasks.specs import SPECS, TASKS, spec_of

#: Every task's own options (a job may set only those of its task).
TASK_OPTIONS = tuple(dict.fromkeys(o for name in TASKS for o in SPECS[name].options))


@dataclass
class JobOptions:
    """Every option of a reconstruction job (the CLI's flags, a TOML config's keys)."""

    task: str = "denoise"
    mode: str = defaults.MODE
    preset: str | None = None  # None: medip.defaults.PRESET
    max_steps: int = defaults.MAX_STEPS
    warm_steps: int | None = None
    slab: int | None = None
    stopper: str = defaults.STOPPER
    lr: float | None = None
    tv: float | None = None  # None: the task's (TaskSpec.tv)
    detail: float | None = None  # None: the task's (TaskSpec.detail)
    wiener: bool | None = None  # None: the task's (TaskSpec.wiener)
    seed: int = defaults.SEED
    ensemble: int = defaults.ENSEMBLE
    device: str = defaults.DEVICE
    threads: int | None = None
    amp: bool = False
    series: str | None = None
    frame: int | None = None
    axis: int | None = None
    patch: int = defaults.PATCH
    noise_free: bool | None = None  # None: the task judges from the data
    reference: str | None = None
    format: str | None = None
    overwrite: bool = False
    preview: bool = False
    report: bool = False
    progress: bool | None = None
    start_from: str | None = None  # a FitStart file: the first fit starts from its weights
    save_start: str | None = None  # where to write this reconstruction's FitStart
    # the tasks' own options (TASK_OPTIONS); each job may set only its task's
    mask: str | None = None
    factor: list[int] | None = None
    kernel: str = defaults.KERNEL
    acceleration: float | None = None
    center_fraction: float = defaults.CENTER_FRACTION
    angles: int = defaults.SIM_ANGLES
    photons: float | None = None
    simulate_from: str | None = None
    geometry: str | None = None
    maps: str = defaults.MRI_MAPS[0]
    coils: int | None = None
    prewhiten: bool | None = None
    part: str = defaults.MRI_PARTS[0]
    method: str = defaults.METHOD

    def __post_init__(self) -> None:
        spec = spec_of(self.task)
        defaults_here = JobOptions.__dataclass_fields__
        foreign = [name for name in TASK_OPTIONS if name not in spec.options
                   and getattr(self, name) != defaults_here[name].default]
        if foreign:
            flags = ", ".join(f"--{n.replace('_', '-')}" for n in foreign)
            raise InputError(f"{flags} do(es) not apply to {self.task}; its own options: "
                             f"{', '.join(spec.options) or 'none'}")
        if self.wiener and not spec.wiener:
            raise InputError(f"--wiener does not apply to {self.task} (only denoising refines its "
                             f"result by the noise level)")
        if self.save_start and self.method != "dip":
            raise InputError(f"--save-start writes a generator's weights; --method {self.method} "
                             f"fits none: leave --save-start off")
        if self.noise_free and not spec.noise_free:
            raise InputError(f"--noise-free does not apply to {self.task} (its measurements are "
                             f"noisy)")

    def stopper_value(self) -> str | int:
        return int(self.stopper) if str(self.stopper).isdigit() else self.stopper

    def generator(self) -> str:
        """The given ``preset``, else :data:`medip.defaults.PRESET`."""
        return self.preset or defaults.PRESET

    def _given_or_task(self, name: str) -> Any:
        """The option ``name`` as given, else the task's default (its spec)."""
        given = getattr(self, name)
        return given if given is not None else getattr(spec_of(self.task), name)

    def learning_rate(self) -> float:
        """The given ``lr``, else the task's default."""
        return self._given_or_task("lr")

    def tv_strength(self) -> float:
        """The given ``tv``, else the task's default."""
        return self._given_or_task("tv")

    def detail_strength(self) -> float:
        """The given ``detail``, else the task's default."""
        return self._given_or_task("detail")

    def wiener_refined(self) -> bool:
        """The given ``wiener``, else the task's default."""
        return bool(self._given_or_task("wiener"))


def option_names() -> set[str]:
    return {f.name for f in fields(JobOptions)}


def read_config(path: Path) -> dict:
    """A TOML config's options (keys are the long option names, ``-`` or ``_``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err})") from None
    config = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(config) - option_names())
    if unknown:
        raise InputError(f"{path}: unknown option(s) {', '.join(unknown)}; use the long option "
                         f"names, e.g. max-steps = 500")
    return config


def resolve(task: str, config: Path | None, flags: dict[str, Any]) -> JobOptions:
    """JobOptions from the defaults, then ``config``, then the ``flags`` given."""
    values: dict[str, Any] = read_config(config) if config else {}
    values.update({k: v for k, v in flags.items() if k in option_names()})
    values["task"] = task
    return JobOptions(**values)
