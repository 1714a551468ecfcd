"""hcebench: hierarchical cross-entropy versus cross-entropy for cell-type annotation.

The library behind the Snakemake workflow; every module is usable without Snakemake. Subpackages by role, each
importing only those before it in this list:

- root modules: ``config`` (schema and cross-key checks), ``errors``, ``io`` (atomic writes), ``layout`` (split
  names, run keys, result paths: the vocabulary the rules share), ``provenance``, ``snakemake_io``;
- ``hierarchy``: the Cell Ontology, its fetch, the label set's reachability matrix;
- ``data``: census access, the simulator, selection, stores, the OOD set, the audit, streaming, augmentation bank;
- ``models``: one module per architecture, the registry, device and precision;
- ``evaluation``: the predictions contract, prediction, metrics, statistics, scoring;
- ``training``: losses, the training loop, augmentation on the device;  ``external``: methods run by their own tools;
- ``report``: aggregation, analyses, tables, figures, the report check.

``tests/import_graph.py`` prints the graph and ``tests/test_package.py`` enforces it.
"""

__version__ = "0.1.0"
