"""Peak memory of one forward pass, per trained model and per cells: is a prediction job's peak set by the model or
by the cells it predicts?

    python benchmarks/forward_peak.py results/rehearsal_quick_25000 results/rehearsal_quick_100000
    python benchmarks/forward_peak.py <run> <run> --arch tabnet --loss ce --cells 2048

For every pair (model of one run, validation cells of one run) a fresh process loads the run's
``models/<arch>/<loss>/seed0/model.pt``, densifies the first ``--cells`` validation cells of the other run's store
and runs one forward pass on the CPU (one thread, no gradients), then reports its resident memory before the pass
and its high-water mark (``VmHWM``). The model's label set does not matter: the pass takes only the genes, which
must be the same. A peak that follows the model and not the cells is a transient of the model's forward pass,
bounded by the batch, not growth per cell. For TabNet the trained weights decide how many of a batch's masks are
wide (a support beyond entmax's top-k shortcut); ``hcebench.models.entmax`` sorts those rows in full 64 at a time,
so the weights move the peak by one such block at most (~50 MB at 19,331 genes). Last line::

    peaks_mb=<model>x<cells>:<peak>,...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys
import numpy as np
import torch
from hcebench.data.store import Store
from hcebench.evaluation.predict import load_model

model_path, store, cells = sys.argv[1], sys.argv[2], int(sys.argv[3])

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) >> 10 for line in f if line.startswith(key))

torch.set_num_threads(1)
model, _ = load_model(model_path, torch.device("cpu"))
model.eval()
split = Store(store).split("val")
x = torch.from_numpy(split.dense_rows(np.arange(min(cells, len(split)))))
before = status("VmRSS")
with torch.no_grad():
    model(x)
print(before, status("VmHWM"))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs", type=Path, nargs="+", help="results/<run> directories with models and a store"
    )
    parser.add_argument("--arch", default="tabnet")
    parser.add_argument("--loss", default="ce")
    parser.add_argument(
        "--cells", type=int, default=2048, help="cells in the forward pass (a prediction batch)"
    )
    args = parser.parse_args()
    peaks = []
    for model_run in args.runs:
        model = model_run / "models" / args.arch / args.loss / "seed0" / "model.pt"
        for data_run in args.runs:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(model), str(data_run / "store"), str(args.cells)],
                capture_output=True,
                text=True,
                check=True,
            )
            before, peak = map(int, done.stdout.split())
            print(
                f"model {model_run.name:28s} cells of {data_run.name:28s} before {before:6,} MB  peak {peak:6,} MB"
            )
            peaks.append(f"{model_run.name}x{data_run.name}:{peak}")
    print("peaks_mb=" + ",".join(peaks))


if __name__ == "__main__":
    main()
