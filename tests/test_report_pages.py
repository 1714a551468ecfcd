"""What the report shows beyond figures: each table as a rendered HTML page, and a landing page stating what ran."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from docutils.core import publish_parts
from hcebench.axes import LOSSES
from hcebench.config import load_config
from hcebench.report.html_tables import format_value, table_html, write_table_html, write_table_views
from jinja2 import Environment

ROOT = Path(__file__).resolve().parents[1]


def test_a_table_page_shows_every_cell_escaped_and_numbers_aligned(tmp_path):
    table = pd.DataFrame(
        {
            "architecture": ["linear", "<mlp>"],
            "ood_mean": [0.76123456, 0.8],
            "p": [3.3e-05, float("nan")],
            "n": [4, 12000],
        }
    )
    page = table_html(table, title="summary", source="summary.tsv")
    assert page.count("<tr>") == 3  # the header and two rows
    assert "&lt;mlp&gt;" in page and "<mlp>" not in page
    assert '<td class="num">0.7612</td>' in page and '<td class="num">3.3e-05</td>' in page
    assert '<td class="num">12,000</td>' in page and '<td class="num"></td>' in page  # NaN is blank
    assert "<td>linear</td>" in page  # text is left-aligned
    assert "2 rows × 4 columns, from <code>summary.tsv</code>" in page


def test_a_long_table_page_says_where_the_rest_is(tmp_path):
    table = pd.DataFrame({"value": range(25)})
    page = table_html(table, title="metrics", source="metrics.tsv", max_rows=10)
    assert page.count("<tr>") == 11
    assert "The first 10 of 25 rows; all of them are in <code>metrics.tsv</code>." in page


def test_format_value():
    assert [format_value(v) for v in (0.0, 2.0, 0.123456, -0.0153, 1e-7, None, "ce", True)] == [
        "0", "2", "0.1235", "-0.0153", "1e-07", "", "ce", "True"
    ]  # fmt: skip


def test_write_table_views_renders_each_html_output_from_its_tsv(tmp_path):
    tsv = tmp_path / "summary.tsv"
    pd.DataFrame({"loss": ["ce", "hce"], "ood_mean": [0.5, 0.7]}).to_csv(tsv, sep="\t", index=False)
    outputs = {"summary": str(tsv), "summary_html": str(tmp_path / "summary.html"), "figure": "x.png"}
    assert write_table_views(outputs) == [tmp_path / "summary.html"]
    assert "<td>hce</td>" in (tmp_path / "summary.html").read_text()
    with pytest.raises(KeyError, match="'metrics_html' renders output 'metrics'"):
        write_table_views({"metrics_html": str(tmp_path / "m.html")})
    assert write_table_html(tsv, tmp_path / "again.html").exists()
    (tmp_path / "empty.tsv").write_text("\n")
    assert (
        "0 rows × 0 columns" in write_table_html(tmp_path / "empty.tsv", tmp_path / "empty.html").read_text()
    )


def landing(config: dict) -> str:
    """report/workflow.rst as Snakemake renders it: Jinja with ``snakemake.config``, then docutils to HTML."""

    class Snakemake:
        pass

    Snakemake.config = config
    # Snakemake appends a link target per category to the text; the landing page links two of them.
    targets = "\n\n.. _1. Headline tables: #\n.. _2. Paper figures (Fig. 2): #\n"
    text = (ROOT / "report" / "workflow.rst").read_text(encoding="utf-8") + targets
    rst = Environment(trim_blocks=True, lstrip_blocks=True).from_string(text).render(snakemake=Snakemake)
    parts = publish_parts(rst, writer="html", settings_overrides={"report_level": 2, "halt_level": 2})
    return parts["html_body"]


@pytest.mark.parametrize("configfile", ["config.yaml", "config/paper.yaml"])
def test_the_landing_page_states_what_ran_from_the_config(configfile):
    config = load_config(yaml.safe_load((ROOT / configfile).read_text()))
    page = re.sub(r"\s+", " ", landing(config))
    census = config["census"]
    assert f"run {config['run']}" in page
    assert census["train_release"] in page and census["ood_release"] in page
    assert ", ".join(str(s) for s in config["training"]["seeds"]) in page
    for arch, entry in config["architectures"].items():
        losses = entry.get("losses", config["training"]["losses"])
        # the architecture's own line names exactly its losses, in the config's order
        line = re.search(rf"<li>{re.escape(arch)}[^<]*?:(.*?)</li>", page)
        assert line, (arch, page)
        named = [
            loss for loss in LOSSES if re.search(rf"\b{re.escape(LOSSES[loss].display)}\b", line.group(1))
        ]
        assert sorted(named) == sorted(losses), (arch, line.group(1))
    assert "each architecture is trained with CE and with HCE" not in page.lower()


def test_the_demo_landing_page_names_five_losses_for_the_linear_model():
    config = load_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
    page = re.sub(r"\s+", " ", landing(config))
    assert re.search(
        r"<li>linear: CE \(cross-entropy\), HCE \(hierarchical cross-entropy\), soft labels, HXE", page
    )
