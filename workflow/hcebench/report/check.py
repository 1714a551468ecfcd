"""Open a Snakemake report in headless Chromium and check that every figure it holds is displayed.

The report (``snakemake --report results/<run>/report.html``) is a React app whose results are embedded as data
URIs; nothing is drawn until its scripts run and a result is opened. ``check_report`` therefore works on a copy
of the report with a probe script appended: once the app has started, the probe opens every embedded PNG in the
report's own content view (``app.setView``, what a click on a result does), waits for the ``<img>`` to decode,
and records the image's natural size per result. Chromium's ``--dump-dom`` after a virtual-time budget returns
the DOM with the probe's findings in ``<pre id="hcebench-probe">``. A figure counts as displayed when its
``<img>`` decoded to a non-empty bitmap.

``python -m hcebench.report.check results/<run>/report.html [--screenshot docs/report.png]`` runs the check
from the command line and, optionally, writes a screenshot of the report showing Fig. 2b.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)

PROBE = """
<script>
window.addEventListener("load", () => setTimeout(async () => {
  const found = {categories: Object.keys(typeof categories === "undefined" ? {} : categories), images: {},
    tables: Object.entries(results).filter(([, r]) => r.mime_type === "text/html").map(([p]) => p)};
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (const [path, entry] of Object.entries(results)) {
    if (!entry.mime_type || !entry.mime_type.startsWith("image/")) continue;
    app.setView({content: "img", contentPath: entry.data_uri, resultPath: path});
    let img = null;
    for (let i = 0; i < 50; i++) {
      await sleep(50);
      img = Array.from(document.querySelectorAll("img")).find((x) => x.getAttribute("src") === entry.data_uri);
      if (img && img.complete) break;
    }
    found.images[path] = img ? {width: img.naturalWidth, height: img.naturalHeight} : null;
  }
  const pre = document.createElement("pre");
  pre.id = "hcebench-probe";
  pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
  SHOW_AT_END
}, 300));
</script>
"""


def find_chromium() -> str | None:
    """Path of a Chromium executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _with_probe(report: Path, directory: Path, show: str | None) -> Path:
    html = report.read_text(encoding="utf-8")
    if "</body>" not in html:
        raise ValueError(f"{report} has no </body>: not a Snakemake HTML report")
    end = ""
    if show is not None:  # leave one view on screen for a screenshot: "" is the landing page, else a result
        end = (
            "document.getElementById('hcebench-probe').remove();"
            "const s = "
            + json.dumps(show)
            + " ? Object.entries(results).find(([p]) => p.endsWith("
            + json.dumps(show or "-")
            + ")) : null;"
            "if (s) {"
            " const cat = Object.keys(categories).find((c) =>"
            "  Object.values(categories[c]).some((paths) => paths.includes(s[0])));"
            " const kind = s[1].mime_type.startsWith('image/') ? 'img' : s[1].mime_type === 'text/html' ? 'html' : 'text';"
            " app.setView({content: kind, contentPath: s[1].data_uri, resultPath: s[0]});"
            # after the view's state is set: setView reads the state, so a category shown first would be undone
            " if (cat) setTimeout(() => app.showCategory(cat), 200);"
            "} else { app.setView({content: 'rulegraph', navbarMode: 'menu'}); }"
        )
    probed = directory / "report_probe.html"
    at = html.rfind("</body>")  # the last one: embedded results may contain HTML of their own
    probed.write_text(html[:at] + PROBE.replace("SHOW_AT_END", end) + html[at:], encoding="utf-8")
    return probed


def _chromium(chromium: str, profile: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_report(
    report: str | Path, *, chromium: str | None = None, budget_ms: int = 60000, timeout: int = 180
) -> dict:
    """Render ``report`` in headless Chromium; return ``{"categories": [...], "images": {path: {"width",
    "height", "category"} or None}}`` as the probe found them (module docstring)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(
            "no chromium on PATH; install it with: apt-get update && apt-get install -y chromium"
        )
    report = Path(report).resolve()
    with tempfile.TemporaryDirectory(prefix="hcebench-report-") as tmp:
        tmp = Path(tmp)
        probed = _with_probe(report, tmp, None)
        done = _chromium(
            chromium,
            tmp / "profile",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            probed.as_uri(),
            timeout=timeout,
        )
    match = re.search(r'<pre id="hcebench-probe">(.*?)</pre>', done.stdout, re.S)
    if match is None:
        raise RuntimeError(
            f"the report's scripts did not finish in headless Chromium (rc {done.returncode}); "
            f"stderr tail: {done.stderr[-2000:]}"
        )
    return json.loads(html.unescape(match.group(1)))


def screenshot(
    report: str | Path,
    output: str | Path,
    *,
    show: str = "fig2b_ood_macro_f1.png",
    size: tuple[int, int] = (1280, 800),
    chromium: str | None = None,
    timeout: int = 180,
) -> Path:
    """A PNG of the report in headless Chromium with the result whose path ends in ``show`` opened (a figure, or a
    table's HTML page, in its category), or with ``show=""`` its landing page (the workflow's description and the
    rule graph)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(
            "no chromium on PATH; install it with: apt-get update && apt-get install -y chromium"
        )
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hcebench-report-") as tmp:
        tmp = Path(tmp)
        probed = _with_probe(Path(report).resolve(), tmp, show)
        shot = tmp / "shot.png"
        _chromium(
            chromium,
            tmp / "profile",
            "--virtual-time-budget=60000",
            f"--window-size={size[0]},{size[1]}",
            f"--screenshot={shot}",
            probed.as_uri(),
            timeout=timeout,
        )
        if not shot.exists():
            raise RuntimeError("chromium wrote no screenshot")
        shutil.move(shot, output)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument(
        "--screenshot", help="also write a PNG of the report showing Fig. 2b (or --show) here"
    )
    parser.add_argument(
        "--show",
        default="fig2b_ood_macro_f1.png",
        help="the result the screenshot opens, by the end of its path (e.g. summary.html); '' for the landing page",
    )
    parser.add_argument("--size", default="1280x800", help="the screenshot's window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    found = check_report(args.report)
    missing = [p for p, v in found["images"].items() if not v or not v["width"]]
    for path, v in sorted(found["images"].items()):
        print(f"{'ok ' if v and v['width'] else 'MISSING'} {path} {v}")
    print("categories:", ", ".join(found["categories"]))
    if args.screenshot:
        width, height = (int(v) for v in args.size.split("x"))
        print("screenshot:", screenshot(args.report, args.screenshot, show=args.show, size=(width, height)))
    return 1 if missing or not found["images"] else 0


if __name__ == "__main__":
    sys.exit(main())
