"""The ``medip`` command: argument parsing over the library; no reconstruction logic of its own.

Options resolve in this order: the defaults of :class:`medip.jobs.JobOptions`, then a
``--config FILE.toml`` (keys are the long option names), then the flags given on the line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from medip import __version__

RESTORE = {"denoise": "remove noise from a scan",
           "inpaint": "fill unknown voxels (--mask FILE: nonzero = known)",
           "superres": "super-resolve by integer factors (--factor 2 or 2,2,1 per axis)",
           "ct": "reconstruct CT from a sinogram (+ JSON geometry) or --simulate-from a CT scan",
           "mri": "reconstruct MRI from multi-coil k-space (.npy/.npz/.h5)"}
SIMULATE = ("noise", "mask", "downsample", "ct", "mri")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _factors(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"factors are integers like 2 or 2,2,1, got {text!r}")


def _shared() -> argparse.ArgumentParser:
    """Options every reconstruction command takes; absent flags stay absent (config may set)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = p.add_argument_group("shared options")
    g.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file; flags "
                   "on the command line override it")
    g.add_argument("--device", help="auto (default: CUDA if present), cpu, cuda, cuda:1")
    g.add_argument("--seed", type=int, help="random seed (default 0); same seed, same output on CPU")
    g.add_argument("--ensemble", type=int, metavar="N", help="restore N times (seeds seed.."
                   "seed+N-1) and average: N times the time, steadier and on average better "
                   "(default 1)")
    g.add_argument("--preset", help="generator: fast (default), skip, skip-paper, decoder")
    g.add_argument("--max-steps", type=int, help="step budget per fit (default 2000)")
    g.add_argument("--warm-steps", type=int, help="budget of warm-started slices (default 1/4)")
    g.add_argument("--stopper", help="wmv, emv, auto (default: WMV in 2D, EMV in 3D) or a fixed "
                   "step count N")
    g.add_argument("--lr", type=float, help="Adam learning rate (default 0.01; 0.02 superres)")
    g.add_argument("--mode", choices=("slices", "3d", "patches"), help="volume strategy "
                   "(default slices)")
    g.add_argument("--axis", type=int, help="slice axis for --mode slices (default 2 = k)")
    g.add_argument("--slab", type=int, help="slices each --mode slices fit sees, odd (default 3 "
                   "for denoise, else 1)")
    g.add_argument("--patch", type=int, help="patch edge for --mode patches (default 64)")
    g.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    g.add_argument("--series", help="DICOM series to read (UID or SeriesNumber)")
    g.add_argument("--frame", type=int, help="volume of a 4D NIfTI to read")
    g.add_argument("--format", choices=("nifti", "dicom", "nrrd", "npy"),
                   help="output format (default: from the extension)")
    g.add_argument("--reference", metavar="FILE", help="clean scan: adds PSNR/SSIM to the sidecar")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g.add_argument("--preview", action="store_true", help="write a PNG preview (input | result)")
    g.add_argument("--report", action="store_true", help="write loss/variance curves and a "
                   "before/after figure (PNG, needs matplotlib)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    g.add_argument("--verbose", action="store_true", help="debug log lines and full tracebacks")
    t = p.add_argument_group("task options")
    t.add_argument("--mask", metavar="FILE", help="inpaint: known voxels (nonzero); mri: sampled "
                   "k-space (.npy)")
    t.add_argument("--noise-free", action="store_true", help="inpaint, superres --kernel box: the "
                   "measured values are exact (no noise): fit the whole step budget without "
                   "input noise and keep them")
    t.add_argument("--factor", type=_factors, help="superres: factor per axis, e.g. 2 or 1,1,2")
    t.add_argument("--kernel", help="superres: box, linear, bicubic (default), lanczos")
    t.add_argument("--acceleration", type=float, help="mri: undersample retrospectively by this")
    t.add_argument("--center-fraction", type=float, help="mri: fully sampled centre (default 0.08)")
    t.add_argument("--angles", type=int, help="ct --simulate-from: number of views (default 60)")
    t.add_argument("--photons", type=float, help="ct --simulate-from: incident photons (Poisson)")
    t.add_argument("--simulate-from", metavar="IMAGE", help="ct: make the sinogram from this scan")
    t.add_argument("--geometry", metavar="FILE.json", help="ct: acquisition geometry (angles, "
                   "detectors, distances, pixel size; default: the sinogram's sidecar)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medip", description="Deep Image Prior reconstruction of medical images and volumes.")
    parser.add_argument("--version", action="version", version=f"medip {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = _shared()
    for task, text in RESTORE.items():
        sub = commands.add_parser(task, help=text, description=text, parents=[shared])
        sub.add_argument("input", help="scan (DICOM folder/file, NIfTI, NRRD, npy, PNG/TIFF)"
                         if task not in ("ct", "mri") else "sinogram (.npy/.tif) or k-space file")
        sub.add_argument("-o", "--output", required=True, help="output file, or folder for DICOM")
        sub.set_defaults(run=_run_restore, task=task)
    batch = commands.add_parser("batch", parents=[shared], help="run a task on every series "
                                "under a folder", description="Run a task on every image series "
                                "under ROOT; resumable through OUT/manifest.jsonl.")
    batch.add_argument("root", help="folder searched recursively for DICOM series and NIfTI")
    batch.add_argument("--task", required=True, choices=("denoise", "inpaint", "superres"))
    batch.add_argument("-o", "--output", required=True, help="output folder (mirrors ROOT)")
    batch.add_argument("--workers", type=int, default=1, help="local worker processes (each gets "
                       "cores/N threads)")
    batch.add_argument("--scheduler", help="address of a Dask distributed scheduler to submit to")
    batch.add_argument("--shard", help="K/N: only the K-th of N parts (job arrays)")
    batch.add_argument("--retry-failed", action="store_true", help="rerun jobs that failed before")
    batch.set_defaults(run=_run_batch)
    simulate = commands.add_parser("simulate", help="make degraded data from a clean scan",
                                   description="Degrade a clean scan; writes the measurement "
                                   "and OUTPUT.medip.json describing exactly how.")
    simulate.add_argument("kind", choices=SIMULATE)
    simulate.add_argument("input", help="clean scan (or fully sampled k-space for mri)")
    simulate.add_argument("-o", "--output", required=True)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--sigma", type=float, default=25 / 255,
                          help="noise: std as a fraction of the value range (default 25/255)")
    simulate.add_argument("--missing", type=float, default=0.5, help="mask: fraction removed")
    simulate.add_argument("--factor", type=_factors, default=[2], help="downsample: per axis")
    simulate.add_argument("--kernel", default="bicubic", help="downsample: anti-alias kernel")
    simulate.add_argument("--angles", type=int, default=60, help="ct: number of views")
    simulate.add_argument("--photons", type=float, default=1e4, help="ct: photons (0 = none)")
    simulate.add_argument("--acceleration", type=float, default=4.0, help="mri: acceleration")
    simulate.add_argument("--center-fraction", type=float, default=0.08)
    simulate.add_argument("--overwrite", action="store_true")
    simulate.set_defaults(run=_run_simulate)
    info = commands.add_parser("info", help="describe what a path holds (series, shapes, spacing)")
    info.add_argument("path", help="a DICOM file or folder, a NIfTI file, or a .npy/.npz array")
    info.set_defaults(run=_run_info)
    demo = commands.add_parser("demo", help="denoise the bundled CT slice; write previews and a report")
    demo.add_argument("-o", "--output", default="medip-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--data", help="folder holding ct_head_slice.dcm (default: ./sample_data)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--max-steps", type=int, default=1500, help="step budget (default: %(default)s)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_run_demo)
    return parser


def resolve_options(args: argparse.Namespace, task: str):
    """JobOptions from defaults, then ``--config``, then the flags given."""
    from medip.jobs import JobOptions

    names = {f.name for f in fields(JobOptions)}
    values: dict = {}
    if getattr(args, "config", None):
        values.update(_read_config(Path(args.config), names))
    values.update({k: v for k, v in vars(args).items() if k in names})
    values["task"] = task
    if getattr(args, "quiet", False):
        values["progress"] = False
    return JobOptions(**values)


def _read_config(path: Path, names: set[str]) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    config = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {', '.join(unknown)}; use the long option "
                         f"names, e.g. max-steps = 500")
    return config


def _setup_logging(args: argparse.Namespace) -> None:
    level = (logging.WARNING if getattr(args, "quiet", False) else
             logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    logging.basicConfig(level=level, format="medip: %(message)s", stream=sys.stderr)


def _run_restore(args: argparse.Namespace) -> int:
    from medip.jobs import run_job, sidecar_of

    options = resolve_options(args, args.task)
    record = run_job(args.input, args.output, options, command_line=["medip", *sys.argv[1:]])
    if options.progress is not False:
        metrics = record["metrics"]
        quality = f", PSNR {metrics['psnr_db']:.2f} dB" if metrics else ""
        print(f"{args.task}: wrote {record['output']} in {record['seconds']:.1f} s (stop steps "
              f"{_steps(record['stop_steps'])}{quality}); sidecar {sidecar_of(Path(record['output']))}")
    return EXIT_OK


def _steps(steps: list[int]) -> str:
    return str(steps[0]) if len(steps) == 1 else f"{min(steps)}-{max(steps)}"


def _run_batch(args: argparse.Namespace) -> int:
    from medip.batch import run_batch, summary

    options = resolve_options(args, args.task)
    quiet = getattr(args, "quiet", False)

    def show(row: dict) -> None:
        if not quiet:
            error = f": {row['error']}" if row.get("error") else ""
            print(f"[{row['status']}] {row['job']}{error}", file=sys.stderr)

    counts = run_batch(args.root, args.output, options, workers=args.workers,
                       scheduler=args.scheduler, shard_spec=args.shard,
                       retry_failed=args.retry_failed, on_row=show)
    print(f"batch: {summary(counts) or 'nothing to do'}; manifest {Path(args.output) / 'manifest.jsonl'}")
    if counts.get("interrupted"):
        print("batch: interrupted; rerun the same command to resume", file=sys.stderr)
    return EXIT_FAILED if counts["failed"] or counts.get("interrupted") else EXIT_OK


def _run_simulate(args: argparse.Namespace) -> int:
    from medip.simulate_cli import simulate_to_files

    written = simulate_to_files(args.kind, Path(args.input), Path(args.output), vars(args),
                                command_line=["medip", *sys.argv[1:]])
    print(f"simulate {args.kind}: wrote {', '.join(map(str, written))}")
    return EXIT_OK


def _run_info(args: argparse.Namespace) -> int:
    from medip.io.describe import describe

    for line in describe(args.path):
        print(line)
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from medip.demo import run_demo

    report = run_demo(args.output, args.data, seed=args.seed, max_steps=args.max_steps,
                      overwrite=args.overwrite, progress=False if args.quiet else None)
    print(f"denoised {report['input']} in {report['seconds']} s (stopped at step "
          f"{report['stop_step']}): PSNR {report['psnr_noisy_db']:.2f} -> "
          f"{report['psnr_denoised_db']:.2f} dB, SSIM {report['ssim_noisy']:.3f} -> "
          f"{report['ssim_denoised']:.3f}; preview {report['preview']}")
    return EXIT_OK


def cli_reference() -> str:
    """The Markdown CLI reference (docs/cli.md), generated from the parser at a fixed width."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return _reference(build_parser())
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _reference(parser: argparse.ArgumentParser) -> str:
    parts = ["# medip command line\n", "Generated from the parser (`medip --markdown > "
             "docs/cli.md`); a test keeps it in sync.\n",
             "```text\n" + parser.format_help() + "```\n"]
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            parts.append(f"## medip {name}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 success, 1 the work failed, 2 usage error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--markdown"]:
        print(cli_reference(), end="")
        return EXIT_OK
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(args)
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, ImportError, MemoryError, RuntimeError) as err:
        if getattr(args, "verbose", False):
            raise
        print(f"medip: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("medip: interrupted", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
