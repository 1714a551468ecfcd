"""Make the two vendored .h5ad files of config/real_pbmc.yaml from the files two PyPI packages ship (PROVENANCE.md).

    python data/real/make_files.py SCANPY_H5AD SCIRPY_H5AD

SCANPY_H5AD: scanpy's ``scanpy/datasets/10x_pbmc68k_reduced.h5ad`` (scanpy 1.11); SCIRPY_H5AD: scirpy's
``scirpy/tests/data/wu2020_200_v0_11.h5ad`` (scirpy 0.22.5 wheel). What is kept, and nothing is changed in it:

- pbmc68k_reduced: every cell; obs bulk_labels, n_counts, louvain, phase; raw.X (log1p of counts scaled to 10,000
  per cell, 765 genes) as X. The scaled X, embeddings and graphs are left out (the benchmark reads counts only).
- wu2020_200: every cell; obs cluster_orig, patient, sample, source, batch (the T-cell receptor columns are left out);
  X (raw counts) on the genes whose symbol pbmc68k_reduced's raw.X also holds, in wu2020's order, and the total counts
  over all 30,727 genes in obs total_counts.

Also writes genes_shared.parquet, the gene list of the example (genes.source): the shared symbols, indexed by the
feature_id the ingest gives each (the scTab table's Ensembl id, or the symbol where the table has none).
"""

import hashlib
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "workflow"))
from hcebench.data.anndata_source import symbol_to_ensembl  # noqa: E402


def main(scanpy_h5ad: str, scirpy_h5ad: str) -> None:
    pbmc = ad.read_h5ad(scanpy_h5ad)
    wu = ad.read_h5ad(scirpy_h5ad)
    raw = pbmc.raw.to_adata()
    pbmc_out = ad.AnnData(
        X=sp.csr_matrix(raw.X, dtype=np.float32),
        obs=pbmc.obs[["bulk_labels", "n_counts", "louvain", "phase"]].copy(),
        var=pd.DataFrame(index=raw.var_names.copy()),
    )
    shared = [g for g in wu.var_names if g in set(raw.var_names)]
    wu_x = sp.csr_matrix(wu.X)
    totals = np.asarray(wu_x.sum(axis=1)).ravel()
    wu_sub = wu[:, shared]
    obs = wu.obs[["cluster_orig", "patient", "sample", "source", "batch"]].copy()
    obs["total_counts"] = totals
    wu_out = ad.AnnData(
        X=sp.csr_matrix(wu_sub.X, dtype=np.float32), obs=obs, var=wu.var.loc[shared, ["gene_ids"]].copy()
    )
    pbmc_out.write_h5ad(HERE / "pbmc68k_reduced.h5ad", compression="gzip")
    wu_out.write_h5ad(HERE / "wu2020_200.h5ad", compression="gzip")
    table = symbol_to_ensembl()
    ids = [table.get(g, g) for g in shared]
    pd.DataFrame({"gene_names": shared}, index=pd.Index(ids, name="feature_id")).to_parquet(
        HERE / "genes_shared.parquet"
    )
    for path in (scanpy_h5ad, scirpy_h5ad, HERE / "pbmc68k_reduced.h5ad", HERE / "wu2020_200.h5ad"):
        print(hashlib.sha256(Path(path).read_bytes()).hexdigest(), path)
    print(f"{len(shared)} shared genes, {sum(i.startswith('ENSG') for i in ids)} with an Ensembl id")


if __name__ == "__main__":
    main(*sys.argv[1:3])
