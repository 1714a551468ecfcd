"""A trained model applied to any ``.h5ad``: per cell, its CL label with probability and its back-off label.

``hcebench-annotate`` (``main``; docs/annotate.md) reads a model from a run's results (``ModelFiles``: its
``model.pt``, the run's label hierarchy, the training store's genes and normalisation, and the propagation
decoder's threshold ``τ`` chosen on the validation split), matches the query's genes to the model's
(``hcebench.data.genes.match_query_genes``), reads the query's raw counts in chunks
(``hcebench.data.h5ad.QueryCounts``), takes them the store's road to normalised rows
(``hcebench.data.reads.store_rows``) and predicts them as the evaluation does (``predict_logits`` in the numerics
the model was trained in, then a softmax). Per cell it writes:

- ``<prefix>label``, ``<prefix>label_name``, ``<prefix>label_prob``: the most probable label (the argmax, the
  workflow's ``predictions/<arch>/<loss>/seed<N>/<split>.parquet``) and its probability;
- ``<prefix>backoff_label``, ``<prefix>backoff_label_name``, ``<prefix>backoff_prob``: the deepest label whose
  subtree holds at least ``τ`` of the probability (propagation decoding, ``hcebench.evaluation.propagation``: the
  workflow's ``<loss>_prop`` predictions), and that subtree's probability.

Memory is one chunk's counts and rows plus ``BYTES_PER_CELL`` per cell for the results until they are written:
an ``.h5ad`` output is a copy of the input with these ``obs`` columns added in place (the copy is written beside
the output and renamed onto it when complete); a ``.parquet`` output is written chunk by chunk, with ``cell_id``
(the obs name) first.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from hcebench import layout
from hcebench.axes import PROPAGATION, loss_label
from hcebench.data.genes import MIN_GENE_SHARE, QueryGeneMatch, match_query_genes
from hcebench.data.h5ad import COUNTS_HELP, QueryCounts
from hcebench.data.reads import store_rows
from hcebench.data.store import GENES_FILE, META_FILE, SparseBatch, Store
from hcebench.errors import CheckpointError, DataError
from hcebench.evaluation.predict import load_model
from hcebench.evaluation.propagation import decode_propagated, propagate
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import atomic_path, read_json, write_json
from hcebench.models.device import float32_matmul_precision, predict_logits, resolve_device
from hcebench.progress import Progress

log = logging.getLogger(__name__)

#: Results held per cell until they are written: label and back-off indices (int32) and their probabilities
#: (float32). A parquet output holds them for one chunk only.
BYTES_PER_CELL = 16
#: The obs columns written, after the prefix.
COLUMNS = ("label", "label_name", "label_prob", "backoff_label", "backoff_label_name", "backoff_prob")
DEFAULT_PREFIX = "hcebench_"
#: Cells read, normalised and predicted at a time: 10,000 × 2,000 stored values of a real atlas is ~160 MB of CSR.
DEFAULT_CHUNK = 10_000
#: Cells densified per forward pass: 1,024 × 19,331 genes × 4 bytes is 79 MB.
DEFAULT_BATCH = 1_024
#: Counts per cell of a store whose meta does not record its normalisation (config normalisation.target_sum).
DEFAULT_TARGET_SUM = 10_000.0


@dataclass(frozen=True)
class ModelFiles:
    """What annotating with one trained model reads: its ``model.pt``, the run's ``hierarchy/`` (labels, names,
    reachability), the training ``store/`` (its meta: the normalisation; its gene table: the genes) and
    the propagation decoder's ``decoder.json`` (its ``τ``), or the threshold ``tau`` given instead (then
    ``decoder`` is None)."""

    model: Path
    hierarchy: Path
    store: Path
    decoder: Path | None
    tau: float | None = None

    @classmethod
    def of(
        cls,
        model: str | os.PathLike,
        *,
        hierarchy: str | os.PathLike | None = None,
        store: str | os.PathLike | None = None,
        decoder: str | os.PathLike | None = None,
        tau: float | None = None,
    ) -> ModelFiles:
        """The files of the model at ``model`` (its directory ``results/<run>/models/<arch>/<loss>/seed<N>`` or
        its ``model.pt``): the others are found in the run by ``hcebench.layout``, unless given. Every missing
        file is named in one ``CheckpointError``."""
        path = Path(model)
        path = path / "model.pt" if path.suffix != ".pt" else path
        run = None
        try:
            keys = layout.run_of(str(path), layout.MODEL)
            relative = layout.MODEL.format(arch=keys["architecture"], loss=keys["loss"], seed=keys["seed"])
            run = Path(str(path)[: -len(relative)] or ".")
        except ValueError:
            keys = {}
        if run is None and (hierarchy is None or store is None or (decoder is None and tau is None)):
            raise CheckpointError(
                f"{path} is not in a run's results (results/<run>/models/<arch>/<loss>/seed<N>/model.pt), so "
                "its hierarchy, store and decoder cannot be found: give --hierarchy, --store and --decoder "
                "(or --tau)"
            )
        hierarchy = Path(hierarchy) if hierarchy is not None else run / layout.HIERARCHY_DIR
        store = Path(store) if store is not None else run / layout.STORE_DIR
        if decoder is None and tau is None:
            propagated = loss_label(keys["loss"], PROPAGATION.name)
            decoder = run / layout.DECODER.format(
                arch=keys["architecture"], loss=propagated, seed=keys["seed"]
            )
        if tau is not None:
            decoder = None
        files = cls(path, hierarchy, store, Path(decoder) if decoder is not None else None, tau)
        files.check()
        return files

    def check(self) -> None:
        needed = {
            "model": [self.model],
            "hierarchy": [self.hierarchy / n for n in ("labels.tsv", "reachability.npy", "hierarchy.json")],
            "store": [self.store / n for n in (META_FILE, GENES_FILE)],
            "decoder": [self.decoder] if self.decoder is not None else [],
        }
        missing = [str(p) for files in needed.values() for p in files if not p.is_file()]
        if missing:
            fix = (
                f" ({self.decoder} is written by the run's evaluate job when evaluation.propagation_decoding is "
                "on; without it give --tau)"
                if self.decoder is not None and str(self.decoder) in missing
                else ""
            )
            raise CheckpointError(
                f"annotating with {self.model} needs files that are missing: {', '.join(missing)}{fix}. Point "
                "--model at a trained run's model directory (results/<run>/models/<arch>/<loss>/seed<N>), or "
                "give --hierarchy, --store and --decoder"
            )


class AnnotationModel:
    """A trained model with what annotating needs: its label hierarchy, genes, normalisation and ``τ``."""

    def __init__(self, files: ModelFiles, device: torch.device):
        self.files, self.device = files, device
        self.model, self.checkpoint = load_model(files.model, device)
        self.hierarchy = LabelHierarchy.load(files.hierarchy)
        problems = []
        if list(self.checkpoint["labels"]) != list(self.hierarchy.term_ids):
            problems.append(f"its labels are not those of {files.hierarchy / 'labels.tsv'}")
        elif self.checkpoint["reachability_hash"] != self.hierarchy.content_hash:
            problems.append(f"its hierarchy is not {files.hierarchy}")
        store = Store(files.store)
        self.genes = store.genes
        if store.gene_ids != list(self.checkpoint["genes"]):
            problems.append(f"its genes are not those of {store.genes_source} (another store)")
        if problems:
            raise CheckpointError(
                f"model {files.model} does not belong with these files: {'; '.join(problems)}. Give the "
                "hierarchy and store of the run that trained it"
            )
        if "target_sum" in store.meta:
            self.target_sum = float(store.meta["target_sum"])
        else:
            self.target_sum = DEFAULT_TARGET_SUM
            log.warning(
                "%s records no normalisation; taking %g counts per cell", store.meta_source, self.target_sum
            )
        tau = files.tau if files.tau is not None else float(read_json(files.decoder)["tau"])
        if not 0 < tau <= 1:
            raise ValueError(f"the back-off threshold tau must lie in (0, 1], not {tau}")
        self.tau = float(tau)
        self.settings = self.checkpoint.get("settings") or {}

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def description(self) -> dict:
        """What the output's provenance records about the model."""
        return {
            "model": str(self.files.model),
            "architecture": self.checkpoint["architecture"],
            "loss": str(self.settings.get("loss", "")),
            "seed": int(self.settings.get("seed", -1)),
            "cl_release": self.hierarchy.release,
            "reachability_hash": self.hierarchy.content_hash,
            "tau": self.tau,
            "tau_source": str(self.files.decoder) if self.files.decoder is not None else "given",
            "target_sum": self.target_sum,
        }

    def predict(self, rows: sp.csr_matrix, batch_size: int) -> np.ndarray:
        """Softmax probabilities (float32, cells × labels) of normalised store rows, as the evaluation predicts."""
        with float32_matmul_precision(self.settings.get("float32_matmul_precision", "highest")):
            logits = predict_logits(
                self.model, RowsInMemory(rows), batch_size, self.device, self.settings.get("bf16", True)
            )
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


class RowsInMemory:
    """A chunk of normalised rows as ``predict_logits`` reads a split: CSR minibatches in order."""

    def __init__(self, rows: sp.csr_matrix):
        self.rows = rows

    def __len__(self) -> int:
        return self.rows.shape[0]

    def sparse_batches(self, batch_size: int, **_) -> Iterator[SparseBatch]:
        for start in range(0, len(self), batch_size):
            part = self.rows[start : start + batch_size]
            yield SparseBatch(
                indptr=part.indptr.astype(np.int64),
                indices=part.indices.astype(np.int32),
                values=part.data.astype(np.float32),
                y=np.zeros(part.shape[0], dtype=np.int64),
                n_genes=part.shape[1],
            )


@dataclass
class ChunkResult:
    """One chunk's answers: label indices into the hierarchy and their probabilities."""

    start: int
    label: np.ndarray
    label_prob: np.ndarray
    backoff: np.ndarray
    backoff_prob: np.ndarray


def annotate_chunks(
    query: QueryCounts,
    model: AnnotationModel,
    match: QueryGeneMatch,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    batch_size: int = DEFAULT_BATCH,
    progress_every_s: float = 60.0,
) -> Iterator[ChunkResult]:
    """Each chunk of the query's cells, predicted: the argmax label and the back-off label at ``model.tau``."""
    r = np.asarray(model.hierarchy.reachability).astype(bool)
    depth = model.hierarchy.depth()
    progress = Progress(query.n_cells, f"annotate {query.path.name}", log, progress_every_s)
    columns = match.lookup(len(query.var))
    for start, counts in query.chunks(chunk_size):
        probs = model.predict(store_rows(counts, columns, model.n_genes, model.target_sum), batch_size)
        label = probs.argmax(axis=1)
        q = propagate(probs, r)
        backoff, _ = decode_propagated(q, depth, model.tau)
        rows = np.arange(len(probs))
        yield ChunkResult(
            start=start,
            label=label.astype(np.int32),
            label_prob=probs[rows, label].astype(np.float32),
            backoff=backoff.astype(np.int32),
            backoff_prob=np.clip(q[rows, backoff], 0.0, 1.0).astype(np.float32),
        )
        progress.advance(len(probs))
    progress.finish()


def result_columns(result: ChunkResult, hierarchy: LabelHierarchy, prefix: str) -> dict[str, object]:
    """A chunk's columns: labels and names as categoricals over the whole label set, probabilities as float32."""
    terms, names = list(hierarchy.term_ids), list(hierarchy.names)
    return {
        f"{prefix}label": pd.Categorical.from_codes(result.label, terms),
        f"{prefix}label_name": pd.Categorical.from_codes(result.label, names_as_categories(names)),
        f"{prefix}label_prob": result.label_prob,
        f"{prefix}backoff_label": pd.Categorical.from_codes(result.backoff, terms),
        f"{prefix}backoff_label_name": pd.Categorical.from_codes(result.backoff, names_as_categories(names)),
        f"{prefix}backoff_prob": result.backoff_prob,
    }


def names_as_categories(names: list[str]) -> list[str]:
    """Label names as categories: two labels of one name (possible in principle) keep their term apart."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def write_parquet(
    chunks: Iterator[ChunkResult],
    query: QueryCounts,
    hierarchy: LabelHierarchy,
    output: Path,
    prefix: str,
    meta: dict,
) -> int:
    """Write every chunk's answers to ``output`` (atomically), one row group per chunk; returns the cells."""
    n = 0
    with atomic_path(output) as tmp:
        writer = None
        try:
            for result in chunks:
                stop = result.start + len(result.label)
                table = pd.DataFrame(
                    {
                        "cell_id": query.cell_ids(result.start, stop),
                        **result_columns(result, hierarchy, prefix),
                    }
                )
                arrow = pa.Table.from_pandas(table, preserve_index=False)
                if writer is None:
                    metadata = dict(arrow.schema.metadata or {})
                    metadata.update({f"hcebench.{k}".encode(): str(v).encode() for k, v in meta.items()})
                    writer = pq.ParquetWriter(tmp, arrow.schema.with_metadata(metadata))
                writer.write_table(arrow.replace_schema_metadata(writer.schema.metadata))
                n = stop
        finally:
            if writer is not None:
                writer.close()
    return n


def write_h5ad(
    chunks: Iterator[ChunkResult],
    query: QueryCounts,
    hierarchy: LabelHierarchy,
    output: Path,
    prefix: str,
    meta: dict,
) -> int:
    """Copy the query to ``output`` with the answers as obs columns and ``meta`` in ``uns['hcebench_annotate']``.

    The answers are held (``BYTES_PER_CELL`` per cell) until the last chunk; then the input is copied beside
    ``output``, the columns are written into the copy's obs (columns of the same names are replaced) and the
    copy is renamed onto ``output``.
    """
    from anndata.io import write_elem

    n = query.n_cells
    label, backoff = np.empty(n, np.int32), np.empty(n, np.int32)
    label_prob, backoff_prob = np.empty(n, np.float32), np.empty(n, np.float32)
    for result in chunks:
        part = slice(result.start, result.start + len(result.label))
        label[part], backoff[part] = result.label, result.backoff
        label_prob[part], backoff_prob[part] = result.label_prob, result.backoff_prob
    columns = result_columns(ChunkResult(0, label, label_prob, backoff, backoff_prob), hierarchy, prefix)
    with atomic_path(output) as tmp:
        shutil.copyfile(query.path, tmp)
        with h5py.File(tmp, "r+") as f:
            obs = f["obs"]
            order = [
                str(c) for c in np.atleast_1d(obs.attrs.get("column-order", [])) if str(c) not in columns
            ]
            for name, values in columns.items():
                if name in obs:
                    log.warning("%s already has obs column %s: replaced", query.path, name)
                    del obs[name]
                write_elem(obs, name, values)
            obs.attrs["column-order"] = np.array(order + list(columns), dtype=object)
            uns = f.require_group("uns")
            if "hcebench_annotate" in uns:
                del uns["hcebench_annotate"]
            write_elem(uns, "hcebench_annotate", {k: v for k, v in meta.items()})
    return n


def annotate(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    model: AnnotationModel,
    *,
    counts: str = "X",
    gene_column: str | None = None,
    match_by: str | None = None,
    min_gene_share: float = MIN_GENE_SHARE,
    chunk_size: int = DEFAULT_CHUNK,
    batch_size: int = DEFAULT_BATCH,
    prefix: str = DEFAULT_PREFIX,
    progress_every_s: float = 60.0,
) -> dict:
    """Annotate the ``.h5ad`` at ``input_path`` with ``model`` into ``output`` (``.h5ad`` or ``.parquet``);
    returns the summary (model, gene match, cells, labels' counts) that the output's metadata also records."""
    output = Path(output)
    if output.suffix not in (".h5ad", ".parquet"):
        raise ValueError(f"--output {output} must end in .h5ad (a copy with obs columns) or .parquet")
    if output.resolve() == Path(input_path).resolve():
        raise ValueError(f"--output {output} is the input file: annotate writes a copy; give another path")
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"chunk size ({chunk_size}) and batch size ({batch_size}) must be positive")
    with QueryCounts(input_path, counts) as query:
        try:
            match = match_query_genes(
                model.genes,
                query.var,
                column=gene_column,
                by=match_by,
                min_share=min_gene_share,
                what=query.what,
            )
        except ValueError as err:
            if counts == "raw.X" or "raw.X" not in query.matrices():
                raise
            # X often holds a subset of genes (highly variable ones) while raw.X keeps them all, with the counts.
            raise ValueError(
                f"{err}; the file also holds raw.X: --counts raw.X reads it with raw.var's genes"
            ) from None
        log.info(
            "%s: %s of the model's %s genes found by %s (column %s); %.1f %% missing, left at zero",
            query.what,
            f"{match.n_found:,}",
            f"{match.n_store_genes:,}",
            match.by,
            match.column,
            100 * match.missing_fraction,
        )
        if match.ambiguous_symbols:
            shown = ", ".join(
                f"{s} ({c['query']}× in the file, {c['model']}× in the model)"
                for s, c in list(match.ambiguous_symbols.items())[:10]
            )
            log.warning(
                "%d symbols name several genes and were left out: %s%s",
                len(match.ambiguous_symbols),
                shown,
                " ..." if len(match.ambiguous_symbols) > 10 else "",
            )
        meta = {
            **model.description,
            "input": str(input_path),
            "counts": counts,
            "genes_matched_by": match.by,
            "genes_query_column": match.column,
            "genes_found": match.n_found,
            "missing_gene_fraction": match.missing_fraction,
            "n_ambiguous_symbols": len(match.ambiguous_symbols),
            "columns": ",".join(prefix + c for c in COLUMNS),
        }
        tally = np.zeros((2, model.hierarchy.k), dtype=np.int64)

        def counted(chunks: Iterator[ChunkResult]) -> Iterator[ChunkResult]:
            for result in chunks:
                tally[0] += np.bincount(result.label, minlength=model.hierarchy.k)
                tally[1] += np.bincount(result.backoff, minlength=model.hierarchy.k)
                yield result

        chunks = annotate_chunks(
            query,
            model,
            match,
            chunk_size=chunk_size,
            batch_size=batch_size,
            progress_every_s=progress_every_s,
        )
        writer = write_parquet if output.suffix == ".parquet" else write_h5ad
        n = writer(counted(chunks), query, model.hierarchy, output, prefix, meta)
    log.info("%s: %s cells annotated", output, f"{n:,}")
    labels = [f"{t} {name}" for t, name in zip(model.hierarchy.term_ids, model.hierarchy.names, strict=True)]
    return {
        **meta,
        "n_cells": n,
        "gene_match": match.report(),
        "label_counts": {lab: int(c) for lab, c in zip(labels, tally[0], strict=True) if c},
        "backoff_label_counts": {lab: int(c) for lab, c in zip(labels, tally[1], strict=True) if c},
    }


# -- the command ---------------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hcebench-annotate",
        description=(
            "Annotate the cells of an .h5ad with a model trained by hcebench: per cell its most probable Cell "
            "Ontology label (id, name, probability) and its back-off label, the deepest label whose subtree holds "
            "at least the model's threshold tau of the probability (chosen on the validation split by the "
            "run's propagation decoder). Writes a copy of the .h5ad with these obs columns, or a parquet."
        ),
        epilog=(
            "Example: hcebench-annotate my_atlas.h5ad --model results/demo/models/linear/hce/seed1 "
            "--output my_atlas.annotated.h5ad. The counts must be raw (integer) counts; they are normalised "
            "as the model's training store was. Columns and the back-off label: docs/annotate.md."
        ),
    )
    p.add_argument("input", help="the .h5ad to annotate (AnnData, cells × genes)")
    p.add_argument(
        "--model",
        required=True,
        help="a trained model's directory, results/<run>/models/<arch>/<loss>/seed<N> (or its model.pt); the "
        "run's hierarchy/, store/ and decoder.json are found from it",
    )
    p.add_argument(
        "--output", "-o", required=True, help="where to write: <name>.h5ad (a copy) or <name>.parquet"
    )
    p.add_argument("--counts", default="X", help=f"the matrix of raw counts: {COUNTS_HELP} (default: X)")
    p.add_argument(
        "--gene-column",
        default=None,
        help="var column holding Ensembl ids or symbols ('index' for the var index); default: the column "
        "(index, feature_id, gene_ids, feature_name, gene_symbols, ...) that finds most of the model's genes",
    )
    p.add_argument(
        "--match-by",
        choices=("feature_id", "feature_name"),
        default=None,
        help="match genes by Ensembl id or by symbol (default: whichever finds more; ids on a tie)",
    )
    p.add_argument(
        "--min-gene-share",
        type=float,
        default=MIN_GENE_SHARE,
        help=f"stop unless this share of the model's genes is found (default {MIN_GENE_SHARE}: below it the "
        "file is another organism, id namespace or a filtered gene list)",
    )
    p.add_argument(
        "--tau", type=float, default=None, help="back-off threshold in (0, 1] instead of decoder.json's"
    )
    p.add_argument(
        "--hierarchy", default=None, help="the run's hierarchy/ directory (default: found from --model)"
    )
    p.add_argument(
        "--store", default=None, help="the run's training store/ directory (default: found from --model)"
    )
    p.add_argument(
        "--decoder", default=None, help="the decoder.json holding tau (default: found from --model)"
    )
    p.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"prefix of the obs columns (default {DEFAULT_PREFIX})"
    )
    p.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK, help=f"cells read at a time ({DEFAULT_CHUNK})"
    )
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help=f"cells per forward pass ({DEFAULT_BATCH})"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--report", default=None, help="also write the summary (gene match, label counts) as JSON here"
    )
    p.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines (10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        files = ModelFiles.of(
            args.model, hierarchy=args.hierarchy, store=args.store, decoder=args.decoder, tau=args.tau
        )
        model = AnnotationModel(files, resolve_device(args.device))
        summary = annotate(
            args.input,
            args.output,
            model,
            counts=args.counts,
            gene_column=args.gene_column,
            match_by=args.match_by,
            min_gene_share=args.min_gene_share,
            chunk_size=args.chunk_size,
            batch_size=args.batch_size,
            prefix=args.prefix,
            progress_every_s=args.progress_every,
        )
    except (CheckpointError, DataError, ValueError) as err:
        log.error("%s", err)
        return 1
    if args.report:
        write_json(args.report, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
