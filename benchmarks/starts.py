"""Issue 21: a scan's first fit started from another scan's fitted weights
(``reconstruct_volume(start=)``, ``medip batch --chain``) against the cold start it replaces.
Run on purpose, not in CI:

    python -m benchmarks.starts          # eight pairs of 7-slice chunks, two budgets
    python -m benchmarks.starts series   # the EPI series' two whole frames, as a batch runs them

Each case is a pair of 7-slice chunks of one real scan, standing for two scans of one protocol:
the next frame of a 4D EPI series, or slices 4.5 to 6 cm further on (another region, as the
next patient's anatomy differs). The first chunk's middle slab is fitted cold with the defaults
(its weights are the start); the second chunk, with other noise, is denoised with the defaults
cold, then started from them with the shipped :data:`medip.reconstruct.START_STEPS` and with
the warm budget (500) instead. Four scans, noise 25/255 of the range, and 10 and 50/255 on two
of them. Seconds are the whole ``reconstruct_volume`` call (probe, fits, Wiener refinement),
one after another on this machine.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import medip
from medip import reconstruct
from medip.engine.metrics import psnr
from medip.operators import gaussian

from .cases import sigma_of
from .common import write_results
from .slabs import chunk
from .stopbed import DATA

DEPTH = 7
#: (case, scan, first slice of each chunk, 4D frame of each chunk, in-plane size or None for
#: native, noise levels as fractions of the range)
CASES = (("EPI frame 0 -> frame 1", "mr_epi_example4d.nii.gz", (9, 9), (0, 1), None, (25,)),
         ("chest CT slices 0-6 -> 9-15", "ct_chest_16slices.nii.gz", (0, 9), (None, None), 128,
          (10, 25, 50)),
         ("T1 2 mm z 25-31 -> 55-61", "mr_brain_t1_2mm.nii.gz", (25, 55), (None, None), None,
          (10, 25, 50)),
         ("T1 clinical slices 3-9 -> 14-20", "mr_brain_t1_clinical.nii.gz", (3, 14),
          (None, None), 128, (25,)))
#: The first fit's budgets compared with the cold start: as shipped, and a warm fit's.
BUDGETS = (reconstruct.START_STEPS, 500)


def noisy(clean: medip.Volume, level: int, seed: int) -> medip.Volume:
    array = torch.from_numpy(clean.array)
    return clean.with_array(gaussian(array, sigma_of(array, level / 255), seed=seed).numpy())


def series() -> None:
    """The two frames of the 4D EPI series, whole (128x96x24 each), noise 25/255 with other
    seeds: frame 0 reconstructed with the defaults (its weights the start), then frame 1 cold
    and started, as ``medip batch --chain`` runs a series' second scan."""
    earlier, scan = (noisy(medip.load(DATA / "mr_epi_example4d.nii.gz", frame=frame), 25, frame)
                     for frame in (0, 1))
    start = medip.reconstruct_volume(earlier, "denoise", progress=False).start
    truth = medip.load(DATA / "mr_epi_example4d.nii.gz", frame=1).array
    rows = []
    for setting, given in (("cold", None), ("started", start)):
        began = time.perf_counter()
        result = medip.reconstruct_volume(scan, "denoise", progress=False, start=given)
        rows.append({"scan": "EPI frame 1, 128x96x24, 25/255", "setting": setting,
                     "seconds": time.perf_counter() - began, "steps": sum(result.steps_run),
                     "first fit steps": result.steps_run[len(result.steps_run) // 2],
                     "psnr": psnr(torch.from_numpy(result.volume.array),
                                  torch.from_numpy(truth))})
        print(rows[-1], flush=True)
    write_results("starts-series", rows, list(rows[0]))


def main() -> None:
    rows = []
    for case, name, firsts, frames, size, levels in CASES:
        before, clean = (chunk(name, size, frame, first, DEPTH)
                         for first, frame in zip(firsts, frames))
        for level in levels:
            earlier, scan = noisy(before, level, 0), noisy(clean, level, 1)
            middle = DEPTH // 2
            slab = earlier.with_array(earlier.array[:, :, middle - 1:middle + 2].copy())
            start = medip.reconstruct_volume(slab, "denoise", wiener=False,
                                             progress=False).start
            truth = torch.from_numpy(clean.array)
            row = {"case": case, "noise /255": level,
                   "noisy psnr": psnr(torch.from_numpy(scan.array), truth)}
            for setting, budget in (("cold", None),) + tuple((f"started {b}", b)
                                                              for b in BUDGETS):
                if budget is not None:
                    reconstruct.START_STEPS = budget
                began = time.perf_counter()
                result = medip.reconstruct_volume(scan, "denoise", progress=False,
                                                  start=start if budget else None)
                seconds = time.perf_counter() - began
                row.update({f"{setting} psnr": psnr(torch.from_numpy(result.volume.array), truth),
                            f"{setting} s": seconds,
                            f"{setting} first steps": result.steps_run[len(result.steps_run) // 2],
                            f"{setting} steps": sum(result.steps_run)})
            reconstruct.START_STEPS = BUDGETS[0]
            for budget in BUDGETS:
                row[f"started {budget} - cold dB"] = row[f"started {budget} psnr"] - row["cold psnr"]
                row[f"started {budget} / cold time"] = row[f"started {budget} s"] / row["cold s"]
            rows.append(row)
            print(row, flush=True)
    summary = {f"started {b}": {
        "median dB": float(np.median([r[f"started {b} - cold dB"] for r in rows])),
        "worst dB": float(min(r[f"started {b} - cold dB"] for r in rows)),
        "median time ratio": float(np.median([r[f"started {b} / cold time"] for r in rows]))}
        for b in BUDGETS}
    print(summary)
    write_results("starts", rows, list(rows[0]), summary)


if __name__ == "__main__":
    import sys

    torch.set_num_threads(2)
    if sys.argv[1:] == ["series"]:
        series()
    else:
        main()
