"""hcebench: hierarchical cross-entropy versus cross-entropy for cell-type annotation.

The library behind the Snakemake workflow. Every module is usable without Snakemake:
``hcebench.losses`` for the losses, ``hcebench.ontology`` for the Cell Ontology closure,
``hcebench.simulate`` for a simulated census in the real SOMA layout, and so on.
"""

__version__ = "0.1.0"
