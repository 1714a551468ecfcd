"""From metrics and predictions to what a reader sees: the summary, the analyses, the figures and the report check.

Owns aggregation across seeds and the HCE-vs-CE summary (``aggregate``), the prediction-level analyses
(``analysis``), the tables behind the report (``tables``), every figure (``figures``), the Hasse-diagram layout
of Fig. 2d (``dag_layout``), each table of the report as an HTML page (``html_tables``), the check every figure
passes before it is written (``figure_check``: no text overlaps or leaves the canvas, type ≥ 6 pt, at most a page
wide) and the headless check of the HTML report (``check``). May import every layer below it
(root, ``hierarchy``, ``data``, ``evaluation``); nothing in the library imports it.
"""
