"""The HTML report as a reader sees it: headless Chromium opens a report built from synthetic records and
metrics (seconds, no workflow run) and checks the console, every figure, every section and their order, then
`refine report screenshot` writes the PNG a person looks at (path printed; kept under pytest's tmp dir).

Needs the `chromium` and `chromium-driver` Debian packages (.ci/run installs them) and selenium (dev extra);
skips only when the browser or its driver is absent."""

import json
import struct

import pytest
from test_report_synth import paper_records, run_report, write_metrics, write_records

from refine.report.browser import chromium, open_report
from refine.report.figures import captions
from refine.report.tables import specs

pytestmark = pytest.mark.skipif(
    chromium() is None, reason="needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
)
SECTIONS = {"summary", "verdicts", "tables", "figures", *specs(), *captions()}


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "synthetic"
    write_records(paper_records(tables=("table3", "table4"), rng=0), root / "evals")
    write_metrics(root / "train")
    bench = root / "benchmarks" / "train_mid" / "lact" / "mid-refine-s0.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\n83.0\t0:01:23\t512.0\n")
    config = {"experiment": "synthetic", "archs": ["deltanet", "lact"], "qa": {"source": "synthetic"}}
    out = root / "report"
    run_report("build", "--records", str(root / "evals"), "--metrics", str(root / "train"), "--out", str(out),
         "--config-json", json.dumps(config))  # fmt: skip
    return out / "report.html"


def test_report_opens_clean_in_a_browser(html):
    with open_report(html) as page:
        assert page.errors == []
        images = page.images()
        assert len(images) == len(captions()) and all(i["complete"] and i["width"] > 0 for i in images), images
        assert SECTIONS <= page.ids(), SECTIONS - page.ids()
        tops = [page.top(s) for s in ("summary", "verdicts", "tables", "figures")]
        assert tops == sorted(tops) and tops[0] < page.height / 4  # the summary opens the page
        summary = page.text("summary").lower()  # card titles are upper-cased by CSS
        for fact in ("synthetic", "config hash", "job time", "1m 23s", "data sources", "qa", "torch", "pass"):
            assert fact in summary, fact
        assert "Verdicts at a glance" in page.text("verdicts")


def test_screenshot_command(html, tmp_path):
    shot = tmp_path / "report.png"
    assert run_report("screenshot", str(html), "--out", str(shot), "--width", "1280", "--height", "900") == 0
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1280, 900)
    print(f"screenshot: {shot}")
