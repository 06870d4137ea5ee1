"""report.html in a real headless browser (Debian's Chromium): the verdict box is on the first
screen and every plot decodes and is laid out with a size.

The page is rendered from a small sweep of the fake model. A copy of it gets a few lines of script
that measure, after load, what the browser actually laid out (``getBoundingClientRect``, computed
style, decoded image sizes) and write it into the DOM that ``--dump-dom`` prints; a screenshot of
the first screen must not be blank and must show the verdict box's colour. ``make test`` installs
chromium (see the Makefile); without it the test is skipped and says so.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qeval.config import SweepConfig
from qeval.models import FakeSource
from qeval.report._html import HTML_FILE
from qeval.sweep import run_sweep
from tests.fakes import MINI, right_except_int4_on_odd

BROWSERS = ("chromium", "chromium-browser")
WIDTH, HEIGHT = 1400, 900
# Headless, offline: without the background-networking flags Chromium tries to reach Google.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars")
CHECK = """
<script>
window.addEventListener("load", () => {
  const seen = (el) => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {top: r.top + window.scrollY, width: r.width, height: r.height,
            shown: s.display !== "none" && s.visibility !== "hidden" && r.width > 0 && r.height > 0};
  };
  const verdict = document.getElementById("verdict");
  const plots = [...document.querySelectorAll("section img")].map((img) => ({
    alt: img.alt, section: img.closest("section").id, decoded: img.complete && img.naturalWidth > 0, ...seen(img)}));
  document.body.setAttribute("data-qeval-check", JSON.stringify({
    verdict: verdict ? {...seen(verdict), kind: verdict.className, text: verdict.innerText} : null,
    plots, viewport: window.innerHeight}));
});
</script>
"""

chromium = next((path for name in BROWSERS if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    chromium is None,
    reason="chromium is not installed: `make test` installs it (apt-get install chromium), or install it by hand",
)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """report.html of a small fake run: fp32 right on every case, int4 wrong on half."""
    out = tmp_path_factory.mktemp("reports")
    config = SweepConfig(model="fake", precisions=("fp32", "int4"), suites=(str(MINI),), device="cpu",
                         latency_samples=3, warmup_requests=1, out_dir=str(out), run_id="browser")
    _, folder = run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd))
    return folder / HTML_FILE


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert chromium is not None
    done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def test_verdict_box_and_plots_are_visible_in_a_real_browser(page: Path, tmp_path: Path):
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", checked.as_uri(), profile=tmp_path / "profile1").stdout
    found = re.search(r'data-qeval-check="([^"]*)"', dom)
    assert found, "the page's load handler did not run: " + dom[:500]
    seen = json.loads(html.unescape(found[1]))

    verdict = seen["verdict"]
    assert verdict is not None and verdict["shown"] and verdict["height"] > 40
    assert verdict["top"] + 40 < seen["viewport"], "the verdict must be on the first screen"
    assert "chosen" in verdict["kind"] and "Ship fp32" in verdict["text"]
    assert "int4 · suite mini: accuracy >= 0.5: undecided at n=12" in verdict["text"]  # why the cheaper one is not

    sections = {p["section"] for p in seen["plots"]}
    assert {"pareto", "suite-intervals"} <= sections
    for plot in seen["plots"]:
        assert plot["decoded"] and plot["shown"] and plot["width"] > 200 and plot["height"] > 150, plot


def test_first_screen_is_not_blank_and_shows_the_verdict_box(page: Path, tmp_path: Path):
    from PIL import Image

    shot = tmp_path / "first-screen.png"
    _chromium(f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "profile2")
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (WIDTH, HEIGHT)
        pixels = list(rgb.getdata())
    ink = sum(1 for p in pixels if sum(p) < 600) / len(pixels)
    assert ink > 0.01, f"the first screen is nearly blank ({ink:.1%} non-white)"
    green_border = (0x07, 0x62, 0x2B)  # .verdict.chosen
    assert sum(1 for p in pixels if all(abs(a - b) < 24 for a, b in zip(p, green_border))) > 500
