"""Synthetic long metrics tables for the report's tests: several losses, their propagation-decoded variants,
CellTypist and the three controls, with values written out per seed so that tests can compute the expectations.

``headline_rows(values)`` turns ``{(architecture, loss, split): [value of seed 0, seed 1, ...]}`` into the
whole-split macro-F1 rows of a metrics table; ``grid_values()`` is the grid most tests use.
"""

from __future__ import annotations

import pandas as pd

#: Per-seed OOD macro F1 of CE; the other losses add a per-seed offset (``OFFSETS``) so the paired differences
#: are known exactly.
CE_OOD = [0.50, 0.52, 0.51, 0.49]
OFFSETS = {
    "ce": [0.0, 0.0, 0.0, 0.0],
    "ce_prop": [0.02, 0.04, 0.03, 0.03],
    "hce": [0.03, 0.02, 0.03, 0.01],  # the differences of tests/test_report_aggregate.py's Fig. 2c case
    "hce_prop": [0.05, 0.06, 0.04, 0.05],
    "soft_labels": [0.01, -0.01, 0.02, 0.0],
}
#: The ID test split sits this much above OOD for every run.
ID_SHIFT = 0.15
#: Architecture offsets: the same losses, shifted.
ARCH_SHIFT = {"linear": 0.0, "mlp": 0.05}
CONTROLS = {"control_random": [0.03, 0.05, 0.04, 0.04], "control_majority": [0.08], "control_truth": [1.0]}
CELLTYPIST = [0.45, 0.47]


def headline_rows(values: dict[tuple[str, str, str], list[float]], metric: str = "macro_f1") -> pd.DataFrame:
    """Whole-split rows (``stratum_type = stratum = "all"``) of a long metrics table; seed ``s`` is list index s."""
    rows = [
        {
            "architecture": arch,
            "loss": loss,
            "seed": seed,
            "split": split,
            "stratum_type": "all",
            "stratum": "all",
            "metric": metric,
            "value": v,
        }
        for (arch, loss, split), seeds in values.items()
        for seed, v in enumerate(seeds)
    ]
    return pd.DataFrame(rows)


def grid_values(hce_scale: float = 1.0) -> dict[tuple[str, str, str], list[float]]:
    """Two architectures × five losses × four seeds × two splits, CellTypist (two seeds) and the controls.

    ``hce_scale`` multiplies the offsets of HCE and HCE + prop. (the mechanism sweep's knob in miniature)."""
    values = {}
    for arch, shift in ARCH_SHIFT.items():
        for loss, offsets in OFFSETS.items():
            scale = hce_scale if loss.startswith("hce") else 1.0
            ood = [round(c + shift + scale * o, 10) for c, o in zip(CE_OOD, offsets, strict=True)]
            values[(arch, loss, "ood")] = ood
            values[(arch, loss, "test")] = [round(v + ID_SHIFT, 10) for v in ood]
    for split, shift in (("ood", 0.0), ("test", 0.1)):
        values[("celltypist", "ce", split)] = [v + shift for v in CELLTYPIST]
        for arch, seeds in CONTROLS.items():
            values[(arch, "none", split)] = list(seeds)
    return values


def grid_metrics(hce_scale: float = 1.0) -> pd.DataFrame:
    return headline_rows(grid_values(hce_scale))
