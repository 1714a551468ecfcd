"""The simulator's vocabularies: the real ontology ids its cells are annotated with.

Owns the Census names and ids of assays, tissues, diseases, sexes, ethnicities and development stages, the
default label universe (Cell Ontology v2022-09-15 terms), each leaf type's abundance and tissues, and the root
every label must descend from (``NATIVE_CELL``). Plain data: imports nothing from the rest of the package.
"""

from __future__ import annotations

NATIVE_CELL = "CL:0000003"
ORGANISM = "homo_sapiens"

#: assay -> (EFO id, median UMIs per cell genome-wide, log-sd of UMIs per cell, is one of the paper's 10x assays)
ASSAYS: dict[str, tuple[str, float, float, bool]] = {
    "10x 3' v1": ("EFO:0009901", 1800.0, 0.55, True),
    "10x 3' v2": ("EFO:0009899", 2800.0, 0.55, True),
    "10x 3' v3": ("EFO:0009922", 5500.0, 0.55, True),
    "10x 5' v1": ("EFO:0011025", 3200.0, 0.55, True),
    "10x 5' v2": ("EFO:0009900", 4500.0, 0.55, True),
    "10x 3' transcription profiling": ("EFO:0030003", 4000.0, 0.55, True),
    "10x 5' transcription profiling": ("EFO:0030004", 4000.0, 0.55, True),
    # Smart-seq2 counts reads, not UMIs: far larger totals and gene-length bias.
    "Smart-seq2": ("EFO:0008931", 400000.0, 0.7, False),
}
#: tissue -> (UBERON id, tissue_general, tissue_general UBERON id)
TISSUES: dict[str, tuple[str, str, str]] = {
    "blood": ("UBERON:0000178", "blood", "UBERON:0000178"),
    "lung": ("UBERON:0002048", "lung", "UBERON:0002048"),
    "upper lobe of left lung": ("UBERON:0008952", "lung", "UBERON:0002048"),
    "bone marrow": ("UBERON:0002371", "bone marrow", "UBERON:0002371"),
    "spleen": ("UBERON:0002106", "spleen", "UBERON:0002106"),
    "lymph node": ("UBERON:0000029", "lymph node", "UBERON:0000029"),
}
DISEASES: dict[str, str] = {
    "normal": "PATO:0000461",
    "COVID-19": "MONDO:0100096",
    "systemic lupus erythematosus": "MONDO:0007915",
    "lung adenocarcinoma": "MONDO:0005061",
    "chronic obstructive pulmonary disease": "MONDO:0005002",
}
#: tissue_general -> (disease, probability that a dataset of that tissue studies it)
TISSUE_DISEASES: dict[str, list[tuple[str, float]]] = {
    "blood": [("COVID-19", 0.2), ("systemic lupus erythematosus", 0.1)],
    "lung": [
        ("COVID-19", 0.15),
        ("lung adenocarcinoma", 0.1),
        ("chronic obstructive pulmonary disease", 0.1),
    ],
}
#: diseases that switch on the interferon-response state program
INTERFERON_DISEASES = ("COVID-19", "systemic lupus erythematosus")
SEXES = {"female": "PATO:0000383", "male": "PATO:0000384", "unknown": "unknown"}
ETHNICITIES = {
    "European": "HANCESTRO:0005",
    "Asian": "HANCESTRO:0008",
    "African": "HANCESTRO:0010",
    "Hispanic or Latin American": "HANCESTRO:0014",
    "unknown": "unknown",
}
DEV_STAGES = {"human adult stage": "HsapDv:0000087", "unknown": "unknown"}

#: The default label universe: 36 CL v2022-09-15 terms over immune, epithelial, endothelial and stromal
#: branches. Multi-parent terms: naive / memory CD4 and CD8 alpha-beta T cells (CD4|CD8 and naive|memory
#: T cell). "pneumocyte" (7 is_a ancestors) and "fibroblast" (6) are labels the paper's ">7 ancestors"
#: filter drops; "hematopoietic cell" and "epithelial cell" are roots that only shape expression.
DEFAULT_UNIVERSE: tuple[str, ...] = (
    "CL:0000988",  # hematopoietic cell
    "CL:0000738",  # leukocyte
    "CL:0000542",  # lymphocyte
    "CL:0000084",  # T cell
    "CL:0000624",  # CD4-positive, alpha-beta T cell
    "CL:0000625",  # CD8-positive, alpha-beta T cell
    "CL:0000898",  # naive T cell
    "CL:0000813",  # memory T cell
    "CL:0000895",  # naive thymus-derived CD4-positive, alpha-beta T cell
    "CL:0000897",  # CD4-positive, alpha-beta memory T cell
    "CL:0000900",  # naive thymus-derived CD8-positive, alpha-beta T cell
    "CL:0000909",  # CD8-positive, alpha-beta memory T cell
    "CL:0000798",  # gamma-delta T cell
    "CL:0000940",  # mucosal invariant T cell
    "CL:0000236",  # B cell
    "CL:0000788",  # naive B cell
    "CL:0000787",  # memory B cell
    "CL:0000786",  # plasma cell
    "CL:0000623",  # natural killer cell
    "CL:0000766",  # myeloid leukocyte
    "CL:0000576",  # monocyte
    "CL:0000860",  # classical monocyte
    "CL:0000875",  # non-classical monocyte
    "CL:0000235",  # macrophage
    "CL:0000451",  # dendritic cell
    "CL:0000784",  # plasmacytoid dendritic cell
    "CL:0000990",  # conventional dendritic cell
    "CL:0000097",  # mast cell
    "CL:0000066",  # epithelial cell
    "CL:0000322",  # pneumocyte
    "CL:0002063",  # type II pneumocyte
    "CL:0002062",  # type I pneumocyte
    "CL:0000115",  # endothelial cell
    "CL:0002144",  # capillary endothelial cell
    "CL:0002138",  # endothelial cell of lymphatic vessel
    "CL:0000057",  # fibroblast
)

_IMMUNE_TISSUES = ("blood", "lung", "bone marrow", "spleen", "lymph node")
#: leaf -> (relative abundance, tissue_generals where it occurs). Leaves absent here get 0.02 everywhere.
LEAF_TABLE: dict[str, tuple[float, tuple[str, ...]]] = {
    "CL:0000895": (0.12, ("blood", "bone marrow", "spleen", "lymph node")),
    "CL:0000897": (0.10, _IMMUNE_TISSUES),
    "CL:0000900": (0.05, ("blood", "bone marrow", "spleen", "lymph node")),
    "CL:0000909": (0.07, _IMMUNE_TISSUES),
    "CL:0000798": (0.015, ("blood", "lung", "spleen")),
    "CL:0000940": (0.004, ("blood", "lung")),  # rare: the cell-count filter should drop it
    "CL:0000788": (0.06, _IMMUNE_TISSUES),
    "CL:0000787": (0.04, _IMMUNE_TISSUES),
    "CL:0000786": (0.01, _IMMUNE_TISSUES),
    "CL:0000623": (0.06, _IMMUNE_TISSUES),
    "CL:0000860": (0.15, ("blood", "lung", "bone marrow", "spleen")),
    "CL:0000875": (0.03, ("blood", "lung", "bone marrow", "spleen")),
    "CL:0000235": (0.12, ("lung", "bone marrow", "spleen", "lymph node")),
    "CL:0000784": (0.008, _IMMUNE_TISSUES),
    "CL:0000990": (0.015, _IMMUNE_TISSUES),
    "CL:0000097": (0.03, ("lung",)),
    "CL:0002063": (0.15, ("lung",)),
    "CL:0002062": (0.05, ("lung",)),
    "CL:0002144": (0.08, ("lung", "spleen")),
    "CL:0002138": (0.015, ("lung", "lymph node")),
    "CL:0000057": (0.06, ("lung", "spleen", "lymph node", "bone marrow")),
}
