"""A table of results as a styled, self-contained HTML page: what the Snakemake report shows for each TSV.

Snakemake's report embeds an HTML result and displays it in place, while a TSV is only a download. Every table a
rule registers in the report is therefore written twice: the TSV (for code) and, beside it, ``<name>.html`` (for
reading): a sortable-looking but script-free page with a sticky header, numbers right-aligned and rounded to four
significant digits, and a line saying where the full table lives. A long table (``metrics.tsv`` holds one row per
run × split × stratum × metric) shows its first ``max_rows`` rows and says how many the TSV has.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hcebench.io import atomic_path

#: Rows shown at most; the rest stay in the TSV (the page says so). 2,000 rows are ~0.5 MB of HTML.
MAX_ROWS = 2000

STYLE = """
body { font: 13px/1.4 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 12px; color: #1f2933; }
p.note { color: #52606d; margin: 0 0 8px 0; }
table { border-collapse: collapse; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e7eb; white-space: nowrap; }
th { position: sticky; top: 0; background: #f0f4f8; text-align: left; border-bottom: 2px solid #9aa5b1; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f9fafb; }
tbody tr:hover { background: #e6f0ff; }
"""


def format_value(value) -> str:
    """A cell as text: numbers to four significant digits (small p-values in e-notation), missing as blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if value == 0 or math.isinf(value):
            return str(value) if value else "0"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def table_html(table: pd.DataFrame, title: str, source: str, max_rows: int = MAX_ROWS) -> str:
    """The page for ``table``: its title, the shown / total rows and the TSV it comes from, then the table."""
    shown = table.head(max_rows)
    numeric = {c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for record in shown.itertuples(index=False):
        cells = []
        for column, value in zip(table.columns, record, strict=True):
            cls = ' class="num"' if column in numeric else ""
            cells.append(f"<td{cls}>{html.escape(format_value(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if len(table) > len(shown):
        note = f"The first {len(shown):,} of {len(table):,} rows; all of them are in <code>{html.escape(source)}</code>."
    else:
        note = f"{len(table):,} rows × {len(table.columns)} columns, from <code>{html.escape(source)}</code>."
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        f'<p class="note">{note}</p>\n'
        f"<table><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>\n</body></html>\n"
    )


def write_table_html(tsv: str | Path, out: str | Path, max_rows: int = MAX_ROWS) -> Path:
    """Render the TSV at ``tsv`` to ``out`` (atomically); the page names the TSV by its file name."""
    tsv, out = Path(tsv), Path(out)
    try:
        table = pd.read_csv(tsv, sep="\t")
    except (
        pd.errors.EmptyDataError
    ):  # a table with no columns (nothing to report) is written as an empty file
        table = pd.DataFrame()
    page = table_html(table, title=tsv.stem, source=tsv.name, max_rows=max_rows)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out


def write_table_views(outputs: Mapping[str, str]) -> list[Path]:
    """For every output ``<name>_html`` of a rule, render its sibling output ``<name>`` (a TSV) into it.

    The rules declare each report table as a pair (``rules/common.smk``: ``table`` and ``table_view``), so a
    script calls this once with its whole output after writing the TSVs.
    """
    written = []
    for key, path in outputs.items():
        if not key.endswith("_html"):
            continue
        source = key[: -len("_html")]
        if source not in outputs:
            raise KeyError(f"output {key!r} renders output {source!r}, which the rule does not have")
        written.append(write_table_html(outputs[source], path))
    return written
