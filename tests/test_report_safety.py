"""The report under hostile and broken input (issue 12, points 1, 2 and 7): only the study's runs, every user string
escaped in the index and the run pages (checked in the HTML and in headless Chromium), bad records survived."""

import copy
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmclf.analysis import report
from llmclf.analysis.html import escape, markdown_text, sanitize_fragment

FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "example"
PAYLOADS = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", '"><svg onload=alert(3)>', "`tick`",
            "{{ 7*7 }}")
RAW = ("<script>alert", "<img src=x", "<svg onload")  # a tag opening; escaped text may say "onerror=alert"


def _template() -> dict:
    path = next(p for p in sorted(FIXTURE.glob("*/record.json")) if json.loads(p.read_text())["status"] == "done")
    return json.loads(path.read_text())


def _record(run_id, label, f1, seed, task="topics", status="done", **extra):
    r = copy.deepcopy(_template())
    r.update(run_id=run_id, label=label, status=status, **extra)
    r["task"]["name"] = task
    r["params"]["seed"] = seed
    r["metrics"].update(f1_micro=f1, f1_macro=f1, accuracy=f1)
    return r


def _write(runs: Path, record: dict) -> Path:
    folder = runs / record["run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "record.json").write_text(json.dumps(record))
    return folder


def _notebook_with_payloads(path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    nb = new_notebook(cells=[
        new_markdown_cell("# a run"),
        new_code_cell(f"dataset = {PAYLOADS[1]!r}", outputs=[
            new_output("display_data", data={"text/html": f"<b>{PAYLOADS[1]}</b>{PAYLOADS[0]}"}),
            new_output("display_data", data={"text/markdown": f"## {PAYLOADS[0]} {PAYLOADS[3]}"}),
            new_output("display_data", data={"application/javascript": "alert(7)"}),
            new_output("stream", name="stdout", text=PAYLOADS[2]),
            new_output("error", ename="ValueError", evalue=PAYLOADS[1], traceback=[PAYLOADS[0]]),
        ]),
    ])
    nbformat.write(nb, str(path))


TASK = f"news {PAYLOADS[1]} {PAYLOADS[3]}"
LABEL = f"head {PAYLOADS[2]}"
DESCRIPTION = f"A study {PAYLOADS[0]} {PAYLOADS[4]} **bold** [x](javascript:alert(8))"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    runs = root / "runs" / "payloads"
    study_ids = ["10_embedding_head-aaaaaaaaaaa1", "10_embedding_head-aaaaaaaaaaa2", "10_embedding_head-aaaaaaaaaaa3",
                 "10_embedding_head-aaaaaaaaaaa4"]
    _write(runs, _record(study_ids[0], LABEL, 1.0, 0, task=TASK, provenance={"model_checksum": PAYLOADS[2]}))
    _write(runs, _record(study_ids[1], LABEL, 1.0, 1, task=TASK))
    failed = _record(study_ids[2], "tfidf " + PAYLOADS[0], None, 0, task=TASK, status="failed",
                     error=f"ValueError: {PAYLOADS[1]} in {PAYLOADS[4]}")
    _notebook_with_payloads(_write(runs, failed) / "notebook.ipynb")
    # the old runs of the same label, before a parameter changed: on disk, not in the study
    _write(runs, _record("10_embedding_head-0000000old01", LABEL, 0.333, 0, task=TASK))
    _write(runs, _record("10_embedding_head-0000000old02", LABEL, 0.333, 1, task=TASK))
    # a truncated record and a half-written notebook (a run killed mid-write)
    (runs / "10_embedding_head-aaaaaaaaaaa4").mkdir()
    (runs / "10_embedding_head-aaaaaaaaaaa4" / "record.json").write_text('{"status": "do')
    (runs / study_ids[1] / "notebook.ipynb").write_text('{"cells": [{"cell_type": "code", "sou')
    study_runs = {"study": "payloads", "description": DESCRIPTION,
                  "runs": {i: {"label": LABEL, "notebook": "10_embedding_head", "task": "news"} for i in study_ids}}
    index = report.render_report("payloads", root / "runs", root / "reports", study_runs=study_runs)
    return root, index, study_runs


def test_the_report_shows_only_the_runs_the_study_names(hostile):
    """Issue 12.1: the old runs (F1 0.333) of a kept label are listed as not in the study, never averaged."""
    root, index, study_runs = hostile
    records = report.load_records("payloads", root / "runs", study_runs)
    assert set(records.run_id) == set(study_runs["runs"]) - {"10_embedding_head-aaaaaaaaaaa4"}
    summary = report.summarize(records)
    row = summary[summary.configuration == LABEL].iloc[0]
    assert row["seeds"] == 2 and row["f1_micro mean"] == 1.0  # the new runs only
    assert {r["run_id"] for r in records.attrs["not_in_study"]} == {"10_embedding_head-0000000old01",
                                                                     "10_embedding_head-0000000old02"}
    page = index.read_text()
    assert "Not in the study" in page and "0000000old01" in page
    assert not (root / "reports" / "payloads" / "runs" / "10_embedding_head-0000000old01.html").exists()
    # without the study file's expansion every record is read, as before
    assert len(report.load_records("payloads", root / "runs")) == 5


def test_strict_leaves_the_other_records_out_entirely(hostile):
    root, _, study_runs = hostile
    records = report.load_records("payloads", root / "runs", study_runs)
    assert "Not in the study" in report.notes_html(records)
    assert report.notes_html(records, strict=True).count("Not in the study") == 0


def test_bad_records_and_half_written_notebooks_are_listed_not_fatal(hostile):
    """Issue 12.7."""
    root, index, _ = hostile
    page = index.read_text()
    assert "Could not read" in page
    assert "aaaaaaaaaaa4/record.json" in page and "aaaaaaaaaaa2/notebook.ipynb" in page
    stub = (root / "reports" / "payloads" / "runs" / "10_embedding_head-aaaaaaaaaaa2.html").read_text()
    assert "Could not read this run" in stub


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.script_text, self._in_script = [], [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [(tag, k, v) for k, v in attrs if k.lower().startswith("on")
                          or (v or "").strip().lower().startswith("javascript:")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text.append(data)


def _assert_inert(page: str, where: str) -> None:
    for raw in RAW:
        assert raw not in page, f"{where}: raw payload {raw!r}"
    parsed = _Elements()
    parsed.feed(page)
    assert not parsed.handlers, f"{where}: event handlers or javascript: links {parsed.handlers}"
    assert not {"svg", "iframe", "object", "embed"} & set(parsed.tags), where
    assert not any("alert" in s for s in parsed.script_text), f"{where}: a script with the payload"


def test_every_page_escapes_every_payload(hostile):
    """Issue 12.2: file/task names, description, configuration labels, parameters, errors and notebook outputs."""
    root, index, _ = hostile
    pages = [index, *sorted((root / "reports" / "payloads" / "runs").glob("*.html"))]
    assert len(pages) == 3
    for path in pages:
        _assert_inert(path.read_text(), path.name)
    page = index.read_text()
    assert escape(PAYLOADS[0]) in page  # the description's script, as text
    assert "{{ 7*7 }}" in page or "{{ 7*7 }}".replace(" ", "") in page  # no template evaluated it
    assert "49" not in page.split("A study", 1)[1][:400]
    assert "&lt;img src=x onerror=alert(2)&gt;" in page  # the task name, in its heading and tables
    assert "`tick`" in page  # the backtick did not open a code span that swallowed the heading
    run_page = (root / "reports" / "payloads" / "runs" / "10_embedding_head-aaaaaaaaaaa3.html").read_text()
    assert "&lt;img src=x onerror=alert(2)&gt;" in run_page and "alert(7)" not in run_page


def test_helpers():
    """The one escape helper, the markdown escaper, the sanitizer and the escaped Styler."""
    assert escape('"><svg onload=alert(3)>') == "&quot;&gt;&lt;svg onload=alert(3)&gt;"
    assert markdown_text("a`b*c") == r"a\`b\*c"
    clean = sanitize_fragment('<table><tr><td onclick="x()">1</td></tr></table><a href="javascript:alert(1)">l</a>'
                              '<a href="runs/x.html">ok</a>')
    assert "onclick" not in clean and "javascript:" not in clean and 'href="runs/x.html"' in clean
    import pandas as pd

    from llmclf.analysis.html import styled

    table = styled(pd.DataFrame({PAYLOADS[1]: [PAYLOADS[0]]}, index=[PAYLOADS[2]])).to_html()
    assert not any(raw in table for raw in RAW) and "&lt;script&gt;" in table


def test_a_study_with_no_finished_run_still_renders(tmp_path):
    runs = tmp_path / "runs" / "nothing"
    _write(runs, _record("10_embedding_head-bbbbbbbbbbb1", "head", None, 0, status="failed", error="boom"))
    index = report.render_report("nothing", tmp_path / "runs", tmp_path / "reports",
                                 study_runs={"study": "nothing", "runs": {"10_embedding_head-bbbbbbbbbbb1": {},
                                                                          "10_embedding_head-bbbbbbbbbbb2": {}}})
    page = index.read_text()
    assert "0 done, 1 failed" in page and "have no record yet" in page and "bbbbbbbbbbb2" in page


def test_report_refuses_a_study_name_that_leaves_the_runs_folder(tmp_path):
    from llmclf.config import ConfigError

    with pytest.raises(ConfigError, match="not a safe name"):
        report.render_report("../outside", tmp_path / "runs", tmp_path / "reports")


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
                 if Path(p).exists()), None) or shutil.which("chromium")


def test_no_dialog_opens_in_chromium(hostile):
    """Issue 12.2, proven in a browser: the index and every run page open in headless Chromium without a dialog."""
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                                     "(pip install playwright; it drives the system chromium)")
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    root, index, _ = hostile
    pages = [index, *sorted((root / "reports" / "payloads" / "runs").glob("*.html"))]
    dialogs = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            # only the pages themselves: no network here, and nothing to fetch from it
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
            for path in pages:
                page.goto(path.resolve().as_uri(), wait_until="load")
                page.wait_for_timeout(300)
                page.mouse.move(5, 5)  # hover handlers, if any survived
        finally:
            browser.close()
    assert dialogs == [], f"dialogs opened: {dialogs}"
    assert len(pages) == 3
