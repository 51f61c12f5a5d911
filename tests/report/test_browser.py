"""report.html in a real headless browser (Debian's chromium): it renders, and not blank.

Skipped with the reason when chromium is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from rbee_props.report import write_report
from tests.report._campaign import campaign

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)
WIDTH, HEIGHT = 1200, 2400


def screenshot(page: Path, out: Path, profile: Path) -> Image.Image:
    """Render ``page`` headless into ``out`` (a PNG) and open it."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={out}", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.is_file(), result.stderr[-2000:]
    return Image.open(out).convert("RGB")


def spread(image: Image.Image) -> float:
    """The largest standard deviation of a colour channel (0 for a one-colour picture)."""
    return max(ImageStat.Stat(image).stddev)


def test_the_report_renders_in_chromium_with_text_tables_and_pictures(tmp_path):
    """~5 s: the report of a campaign with findings, and an empty page as the blank baseline."""
    files = write_report(campaign(tmp_path), tmp_path / "out")
    shot = screenshot(files.html, tmp_path / "report.png", tmp_path / "profile")
    assert shot.size == (WIDTH, HEIGHT)
    assert spread(shot) > 30
    # the red "new findings" badge near the top left: rendered with its style
    badge = shot.crop((40, 40, 400, 140))
    colours = badge.getcolors(maxcolors=badge.width * badge.height)
    assert any(r > 150 and g < 80 and b < 80 for _, (r, g, b) in colours)
    # every band of the page has something on it (tables, the charts, the findings)
    for top in range(0, HEIGHT, 400):
        assert spread(shot.crop((0, top, WIDTH, top + 400))) > 5, top

    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    baseline = screenshot(blank, tmp_path / "blank.png", tmp_path / "profile")
    assert spread(baseline) < 1  # the check above would tell a blank page
