"""From metrics and predictions to what a reader sees: the summary, the analyses, the figures and the report check.

Owns aggregation across seeds and the HCE-vs-CE summary (``aggregate``), the prediction-level analyses
(``analysis``), the tables behind the report (``tables``), every figure (``figures``), the Hasse-diagram layout
of Fig. 2d (``dag_layout``), each table of the report as an HTML page (``html_tables``) and the headless check of
the HTML report (``check``). May import every layer below it
(root, ``hierarchy``, ``data``, ``evaluation``); nothing in the library imports it.
"""
