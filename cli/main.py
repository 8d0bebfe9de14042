"""The ``medip`` command: argument parsing over the library; no logic of its own."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from medip import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medip", description="Deep Image Prior reconstruction of medical images and volumes.")
    parser.add_argument("--version", action="version", version=f"medip {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
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


def _run_info(args: argparse.Namespace) -> int:
    from medip.io.describe import describe

    for line in describe(args.path):
        print(line)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from medip.demo import run_demo

    report = run_demo(args.output, args.data, seed=args.seed, max_steps=args.max_steps,
                      overwrite=args.overwrite, progress=False if args.quiet else None)
    print(f"denoised {report['input']} in {report['seconds']} s (stopped at step "
          f"{report['stop_step']}): PSNR {report['psnr_noisy_db']:.2f} -> "
          f"{report['psnr_denoised_db']:.2f} dB, SSIM {report['ssim_noisy']:.3f} -> "
          f"{report['ssim_denoised']:.3f}; preview {report['preview']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 success, 1 the work failed, 2 usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, ImportError) as err:
        if args.verbose:
            raise
        print(f"medip: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
