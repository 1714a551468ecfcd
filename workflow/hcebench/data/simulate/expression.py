"""Expression: gene-level biology shared by all datasets, and each dataset's cells drawn block by block.

Owns ``Biology`` and ``make_biology`` (baseline, per-term gene programs down the DAG, state programs, assay
and nucleus shifts) and ``DatasetSampler``, which draws a dataset's cells in blocks of ``BLOCK`` from
generators keyed by ``(seed, purpose, dataset, block)``, so content does not depend on write batching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcebench.data.simulate.plan import DatasetPlan
from hcebench.data.simulate.settings import SimulationConfig
from hcebench.data.simulate.universe import Universe
from hcebench.data.simulate.vocabulary import ASSAYS, INTERFERON_DISEASES

#: Cells drawn per random stream: fixed so that the content is independent of how writes are batched.
BLOCK = 1024


@dataclass
class Biology:
    """Gene-level parameters shared by every dataset, on the union gene index of both releases."""

    gene_ids: np.ndarray
    gene_names: np.ndarray
    feature_length: np.ndarray
    baseline: np.ndarray  # (G,) log expression
    programs: np.ndarray  # (n_terms, G) log-fold changes, row per universe term
    states: np.ndarray  # (n_states, G)
    assay_shift: dict[str, np.ndarray]
    nucleus_shift: np.ndarray
    lib_factor: dict[str, float]  # leaf -> library-size factor (cell size differs by type)


def make_biology(cfg: SimulationConfig, u: Universe, gene_ids: np.ndarray, gene_names: np.ndarray) -> Biology:
    rng = np.random.default_rng([cfg.seed, 2])
    g = len(gene_ids)
    baseline = rng.normal(0.0, cfg.baseline_sd, g)
    programs = np.zeros((len(u.terms), g))
    # Markers are genes a cell of the type detectably expresses: draw programs from the genes whose
    # baseline is above the median, so that a program's signal is not lost in all-zero genes.
    expressed = np.flatnonzero(baseline >= np.median(baseline))
    for i, t in enumerate(u.terms):
        lv = u.level[t]
        n = max(cfg.min_program_genes, int(round(cfg.program_genes * cfg.program_genes_decay**lv)))
        genes = rng.choice(expressed, size=min(n, len(expressed)), replace=False)
        lfc = cfg.program_lfc * cfg.program_lfc_decay**lv * np.exp(rng.normal(0, 0.35, len(genes)))
        sign = np.where(rng.random(len(genes)) < cfg.program_down_fraction, -1.0, 1.0)
        programs[i, genes] = lfc * sign
    states = np.zeros((cfg.state_programs, g))
    for i in range(cfg.state_programs):
        genes = rng.choice(g, size=min(40, g), replace=False)
        states[i, genes] = cfg.state_lfc * np.exp(rng.normal(0, 0.3, len(genes)))
    assay_shift = {a: rng.normal(0, cfg.assay_sd * (2.5 if not ASSAYS[a][3] else 1.0), g) for a in ASSAYS}
    nucleus_shift = rng.normal(0, cfg.nucleus_sd, g)
    feature_length = np.round(np.exp(rng.normal(np.log(2500), 0.8, g))).astype(np.int64) + 100
    lib_factor = {leaf: float(np.exp(rng.normal(0, 0.25))) for leaf in u.leaves}
    return Biology(
        gene_ids,
        gene_names,
        feature_length,
        baseline,
        programs.astype(np.float32),
        states.astype(np.float32),
        assay_shift,
        nucleus_shift,
        lib_factor,
    )


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    return x


class DatasetSampler:
    """Draws a dataset's cells block by block; block ``b`` is always the same cells."""

    def __init__(self, cfg: SimulationConfig, u: Universe, bio: Biology, plan: DatasetPlan):
        self.cfg, self.u, self.bio, self.plan = cfg, u, bio, plan
        rng = np.random.default_rng([cfg.seed, 3, plan.index])
        g = len(bio.gene_ids)
        self.leaves = list(plan.composition)
        self.leaf_p = np.array([plan.composition[t] for t in self.leaves])
        tindex = u.index
        # Cell-by-term membership template: a leaf activates the program of every ancestor in the universe.
        self.member = np.zeros((len(self.leaves), len(u.terms)), dtype=np.float32)
        for i, leaf in enumerate(self.leaves):
            self.member[i, [tindex[a] for a in u.ancestors[leaf]]] = 1.0
        shift = bio.baseline + bio.assay_shift[plan.assay] + rng.normal(0, cfg.batch_sd, g)
        if plan.suspension_type == "nucleus":
            shift = shift + bio.nucleus_shift
        if plan.assay == "Smart-seq2":
            shift = shift + 0.5 * np.log(bio.feature_length / 2500.0)
        self.shift = shift.astype(np.float32)
        self.donor_shift = rng.normal(0, cfg.donor_sd, (len(plan.donors), g)).astype(np.float32)
        self.programs = bio.programs
        self.states = bio.states
        # Ambient RNA: the dataset's average expression profile, leaking into every droplet.
        profiles = _softmax_rows((self.shift[None, :] + self.member @ self.programs).astype(np.float64))
        self.ambient = (self.leaf_p @ profiles).astype(np.float32)
        self.ambient_fraction = float(rng.uniform(0, cfg.ambient_max)) if ASSAYS[plan.assay][3] else 0.0
        _, median, self.lib_sd, _ = ASSAYS[plan.assay]
        factor = 0.5 if plan.suspension_type == "nucleus" else 1.0
        self.lib_median = median * cfg.panel_umi_fraction * factor * float(np.exp(rng.normal(0, 0.3)))
        self.stress_level = float(rng.gamma(2.0, 0.25))
        self.ifn = np.array(
            [3.0 if d["disease"] in INTERFERON_DISEASES else 0.0 for d in plan.donors], dtype=np.float32
        )
        self.n_blocks = (plan.n_cells + BLOCK - 1) // BLOCK

    def block(self, b: int) -> dict[str, np.ndarray]:
        """Cells ``[b*BLOCK, ...)``: leaf index, donor index and counts on the union gene index."""
        cfg, bio = self.cfg, self.bio
        n = min(BLOCK, self.plan.n_cells - b * BLOCK)
        rng = np.random.default_rng([cfg.seed, 4, self.plan.index, b])
        leaf = rng.choice(len(self.leaves), size=n, p=self.leaf_p)
        donor = rng.choice(len(self.plan.donors), size=n, p=self.plan.donor_weights)
        activity = self.member[leaf] * np.exp(
            rng.normal(0, cfg.identity_sd, (n, self.member.shape[1]))
        ).astype(np.float32)
        state = np.empty((n, self.states.shape[0]), dtype=np.float32)
        if state.shape[1] > 0:  # interferon response: up in COVID-19 / lupus donors
            state[:, 0] = rng.gamma(0.5, 0.3, n) + self.ifn[donor] * rng.random(n)
        if state.shape[1] > 1:  # cycling: a small fraction of cells
            state[:, 1] = (rng.random(n) < 0.05) * rng.uniform(0.5, 1.5, n)
        if state.shape[1] > 2:  # dissociation stress: a dataset-level protocol effect
            state[:, 2] = rng.gamma(1.0, self.stress_level, n)
        if state.shape[1] > 3:
            state[:, 3:] = rng.gamma(0.5, 0.3, (n, state.shape[1] - 3))
        logits = (
            self.shift[None, :] + self.donor_shift[donor] + activity @ self.programs + state @ self.states
        )
        p = _softmax_rows(logits)
        if self.ambient_fraction > 0:
            p *= 1.0 - self.ambient_fraction
            p += self.ambient_fraction * self.ambient[None, :]
        lf = np.array([bio.lib_factor[t] for t in self.leaves])[leaf]
        lib = self.lib_median * lf * np.exp(rng.normal(0, self.lib_sd, n))
        mu = p * lib[:, None].astype(np.float32)
        theta = cfg.inverse_dispersion
        counts = rng.poisson(rng.standard_gamma(theta, size=mu.shape, dtype=np.float32) * (mu / theta))
        return {"leaf": leaf, "donor": donor, "counts": counts}

    def rows(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Specific cells (sorted row numbers) of this dataset, regenerated from their blocks."""
        parts = []
        for b in np.unique(rows // BLOCK):
            blk = self.block(int(b))
            sel = rows[(rows // BLOCK) == b] - b * BLOCK
            parts.append({k: v[sel] for k, v in blk.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in ("leaf", "donor", "counts")}
