"""report.html: self-contained, every finding with its REPORT.md, pictures embedded, nothing a
recorded value holds is run as HTML."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import attrs
import pytest
from PIL import Image

from rbee_props.report import CampaignResult, render_html, write_report
from tests.report._campaign import HOSTILE, campaign


class Page(HTMLParser):
    """Collects tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """One campaign for the module (its pictures take a moment to draw on a busy machine)."""
    return campaign(tmp_path_factory.mktemp("campaign"))


@pytest.fixture(scope="module")
def html_page(result):
    return render_html(result)


def test_the_page_is_self_contained(html_page):
    page = parse(html_page)
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags
    assert "link" not in tags
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    # suites chart, load series, the timeline of the S02 finding
    assert len(images) == 3
    for image in images:
        assert image["src"].startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1])))
        assert picture.size[0] > 300
        assert image["alt"]
    for tag, attributes in page.tags:
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            assert not re.match(r"(https?:)?//", value), (tag, attributes)


def test_each_finding_has_a_section_with_its_report_and_an_index_entry(result, html_page):
    page = parse(html_page)
    sections = [a["id"] for tag, a in page.tags if tag == "section"]
    links = [a["href"] for tag, a in page.tags if tag == "a"]
    assert len(sections) == len(result.findings) == 4
    assert links == [f"#{anchor}" for anchor in sections]
    text = " ".join(page.text)
    for finding in result.findings:
        assert finding.signature in text
    assert "reproduced 3/3" in text and "reproduced 2/3" in text and "not replayed" in text
    # REPORT.md headings become h3 and below inside a section; its code blocks stay code
    assert ("h3", {}) in page.tags
    assert "curl -X POST http://127.0.0.1:8080/v2/workers/register" in text
    assert "known deviation" in text


def test_recorded_values_are_shown_not_run(html_page):
    assert HOSTILE not in html_page
    assert "&lt;script&gt;alert" in html_page


def test_the_status_line_says_new_findings_or_clean_or_interrupted(result, html_page):
    assert "3 new findings" in html_page
    clean = render_html(CampaignResult(seconds=60.0))
    assert "no new findings" in clean
    assert "No finding: every suite passed its checks." in clean
    stopped = attrs.evolve(result, interrupted=True, suites=(), series=())  # no pictures: quick
    assert "interrupted: 3 new findings so far" in render_html(stopped)


def test_write_report_writes_both_files_whole(result, tmp_path):
    files = write_report(attrs.evolve(result, series=()), tmp_path / "out")
    assert files.html.read_text().startswith("<!DOCTYPE html>")
    assert files.junit.read_bytes().startswith(b"<?xml")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["junit.xml", "report.html"]
