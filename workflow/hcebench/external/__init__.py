"""External methods: annotators trained by their own tools, in their own environments, scored like any model.

Each writes the predictions contract (``hcebench.evaluation.contract``) for the evaluated splits, so it joins
metrics, summary and figures with no change elsewhere; ``celltypist`` is the worked example, ``controls`` the
random, majority and truth predictors that bound the scores. May import root, ``hierarchy``, ``data`` (the store,
without torch) and ``evaluation.contract``; never torch, models or training.
"""
