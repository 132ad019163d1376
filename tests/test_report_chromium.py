"""The HTML report in a real browser: headless Chromium loads it without errors, every embedded image
decodes, and the screenshot shows the page (the verdict banner and the charts), not a blank.

Skipped where Chromium is not installed (Debian: apt-get install -y chromium). The screenshot is
written to pytest's tmp_path only, never committed.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image as mpimg
from report_data import kernel_results, validate_results

from zhisuan.bench.report.assemble import build_document
from zhisuan.bench.report.output import write_html

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)"
)

# Appended to a copy of the page: counts the images that decoded and records any error the page
# raises (script errors, and resources that fail to load: those do not bubble, hence capture).
PROBE = """<script>
const errors = [];
window.addEventListener('error', e => errors.push(e.message || ('failed to load ' + (e.target.src || '').slice(0, 40))), true);
window.addEventListener('load', () => {
  const images = [...document.images];
  const decoded = images.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0);
  document.body.setAttribute('data-images', images.length + '/' + decoded.length);
  document.body.setAttribute('data-errors', errors.join(' | '));
});
</script>"""


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _probe(tmp_path, html: str) -> tuple[str, str, list[str]]:
    """(images 'total/decoded', page errors, console lines) of a page loaded in Chromium."""
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = _chromium(tmp_path, "--dump-dom", page.as_uri())
    body = re.search(r'<body data-images="([^"]*)" data-errors="([^"]*)"', done.stdout)
    assert body, f"the page did not finish loading: {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return body.group(1), body.group(2), console


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    checks = [r for r in validate_results() if r.op in ("matmul", "burn-in", "summary")]
    doc = build_document(checks + kernel_results()[:8])
    path = write_html(doc, tmp_path_factory.mktemp("html") / "report.html")
    return path, len(doc.figures())


def test_page_loads_without_errors_and_every_image_decodes(report, tmp_path):
    path, figures = report
    images, errors, console = _probe(tmp_path, path.read_text(encoding="utf-8"))
    assert images == f"{figures}/{figures}" and figures >= 4
    assert errors == "" and console == []


def test_the_probe_notices_a_broken_image(tmp_path):
    # The check above must be able to fail: a truncated data URI and a missing file are caught.
    html = '<html><body><img src="data:image/png;base64,iVBORw0KGgo="><img src="gone.png"></body></html>'
    images, errors, _ = _probe(tmp_path, html)
    assert images == "2/0" and "failed to load" in errors


def test_screenshot_shows_the_verdict_and_the_charts(report, tmp_path):
    path, _ = report
    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, "--window-size=1280,2600", f"--screenshot={shot}", path.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    pixels = (mpimg.imread(shot)[:, :, :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (2600, 1280)

    def share(rgb, tolerance=6) -> float:
        return float((np.abs(pixels - np.array(rgb)).max(axis=2) <= tolerance).mean())

    assert share((255, 255, 255)) < 0.9, "the page is (nearly) blank"
    assert share((0xFE, 0xE2, 0xE2)) > 0.01, "no FAIL banner background (#fee2e2)"
    assert share((0xB9, 0x1C, 0x1C)) > 0.0005, "no FAIL verdict text (#b91c1c)"
    assert share((0x3B, 0x82, 0xF6), tolerance=10) > 0.005, "no PASS bars of the per-device chart (#3b82f6)"
