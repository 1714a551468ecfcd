"""hcebench.provenance: the provenance columns every table carries."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hcebench.provenance import TABLE_COLUMNS, code_version, collect, stamp


# -- provenance -----------------------------------------------------------------------------------------
def test_provenance_columns_and_code_version():
    prov = collect(
        train_release="r1",
        ood_release="r2",
        cl_release="v1",
        reachability_hash="abc",
        seeds=[0, 1],
        architectures=["mlp"],
        losses=["ce", "hce"],
    )
    assert prov["seeds"] == "0,1" and prov["version.numpy"] == np.__version__
    assert code_version().startswith(("git ", "hcebench "))
    stamped = stamp(pd.DataFrame({"x": [1, 2]}), prov)
    assert list(stamped.columns) == ["x", *TABLE_COLUMNS]
