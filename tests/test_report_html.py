import base64
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.image import imread

from asr.evaluation.metrics import Scored
from asr.evaluation.report import build_report, write_report
from asr.evaluation.report.html import alignment_html

CHROMIUM = Path("/usr/bin/chromium")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
TABLES = {"summary-table", "counts-table", "substitutions-table", "deletions-table", "insertions-table",
          "speaker-table", "utterance-table"}


class Page(HTMLParser):
    """Collects ids, classes and image sources, and checks that every element is closed in order."""

    def __init__(self):
        super().__init__()
        self.open, self.ids, self.classes, self.images, self.links = [], set(), [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.add(attrs.get("id"))
        self.classes += (attrs.get("class") or "").split()
        self.images += [attrs["src"]] if tag == "img" else []
        self.links += [attrs[name] for name in ("src", "href") if name in attrs]
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    reference = "the cat sat on the mat near the door"
    hypotheses = ["the cat sat on mat near the door", "the bat sat on the mat near the door today", reference]
    rows = [Scored(id=f"spk{index % 3}-{index}", reference=reference, hypothesis=hypotheses[index % 3],
                   duration=2.0 + index, speaker=f"spk{index % 3}") for index in range(12)]
    rows.append(Scored(id="<script>alert(1)</script>", reference="fish & chips", hypothesis="fish and chips"))
    report = build_report(rows, model="model <v2>", data="test.jsonl", normalization="lower-case",
                          bootstrap=100, missing=[])
    report["failures"] = [{"audio_filepath": "broken.wav", "error": "broken.wav: not audio"}]
    return write_report(report, tmp_path_factory.mktemp("report"))["html"].parent


def test_html_is_self_contained_and_well_formed(report_dir):
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    page.close()
    assert page.open == []
    assert TABLES <= page.ids
    assert not [link for link in page.links if re.match(r"\s*(https?:)?//", link)]
    assert len(page.images) == 3
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG")


def test_html_shows_alignment_and_escapes_text(report_dir):
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    assert {"sub", "del", "ins"} <= set(page.classes)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "model &lt;v2&gt;" in html and "broken.wav" in html


def test_alignment_html_marks_each_error():
    alignment = [{"op": "equal", "reference": ["the"], "hypothesis": ["the"]},
                 {"op": "substitute", "reference": ["cat"], "hypothesis": ["b&t"]},
                 {"op": "delete", "reference": ["sat"], "hypothesis": []},
                 {"op": "insert", "reference": [], "hypothesis": ["down"]}]
    assert alignment_html(alignment) == (
        'the <span class="sub" title="substitution"><s>cat</s>b&amp;t</span> '
        '<span class="del" title="deletion">sat</span> <span class="ins" title="insertion">down</span>')


def chromium(*arguments, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1280,2000"]
    return subprocess.run([str(CHROMIUM), *flags, *arguments], capture_output=True, text=True, timeout=90)


# Exercises the page's own sort and filter code, then leaves the results on <body>.
PROBE = """<script>
const table = document.getElementById("utterance-table");
const filter = document.getElementById("filter");
filter.value = "spk1"; filter.dispatchEvent(new Event("input"));
const visible = Array.from(table.tBodies[0].rows).filter(row => !row.hidden).length;
filter.value = ""; filter.dispatchEvent(new Event("input"));
table.tHead.rows[0].cells[0].click();
const ids = Array.from(table.tBodies[0].rows).map(row => row.cells[0].textContent);
document.body.dataset.probe = JSON.stringify({visible, ids});
</script></body>"""


@pytest.mark.ci  # .ci/run installs Debian's chromium
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium")
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    screenshot = tmp_path / "report.png"
    page = (report_dir / "report.html").as_uri()
    chromium(f"--screenshot={screenshot}", page, profile=tmp_path / "profile")
    assert screenshot.exists(), "chromium wrote no screenshot"
    pixels = imread(screenshot)[..., :3]
    assert pixels.std() > 0.05  # a blank page is one colour
    assert (pixels.std(axis=(1, 2)) > 0.01).mean() > 0.3  # content down the page, not one stripe

    probe = tmp_path / "probe.html"
    probe.write_text((report_dir / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE))
    dom = chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "profile").stdout
    for table in TABLES:
        assert f'id="{table}"' in dom
    state = json.loads(re.search(r'data-probe="([^"]*)"', dom).group(1).replace("&quot;", '"'))
    assert state["visible"] == 4
    assert state["ids"] == sorted(state["ids"], key=str.lower)
