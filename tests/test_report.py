"""The HTML report and the publishing exports, rendered from result files built in Python."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from chromium_page import CHROMIUM, DevToolsPage, png_pixels, screenshot_png
from report_fixtures import (
    XSS_IMG,
    XSS_SCRIPT,
    cell_result,
    injected_results,
    single_seed_results,
    three_seed_results,
    write_run,
)

from harness.cli import main
from harness.figures import shown_figures
from harness.report.export import export
from harness.report.html import render_html, report_context
from harness.report.latex import latex_escape
from harness.results.table import load_results


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run", three_seed_results())


def test_markdown_is_a_github_table(run_dir):
    text = export(run_dir, "md")
    table, notes = text.split("\n\n", 1)
    lines = table.splitlines()
    assert notes.split("\n\n") == [
        "Data (qa): qa corpus (Doe 2026), CC BY 4.0",
        "Data (sentiment): sentiment corpus (Doe 2026), CC BY 4.0\n",
    ]
    assert lines[0].startswith("| task | scenario | strategy |")
    assert re.fullmatch(r"\|(---\|)+", lines[1])
    counts = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
    assert counts == {lines[1].count("|")} and len(lines) == 2 + 8


def _latex_rows(text: str) -> list[str]:
    body = text.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    return [line for line in body.splitlines() if line.strip() and line.strip() != "\\midrule"]


def test_latex_is_a_booktabs_fragment_that_compiles(run_dir):
    text = export(run_dir, "latex")
    shown = shown_figures(load_results(run_dir, aggregate=True))  # figures that ask to be shown and have values
    layout = "lllrrrrr" + "r" * len(shown)
    assert text.count(f"\\begin{{tabular}}{{{layout}}}") == 1 and text.rstrip().endswith("\\end{tabular}")
    positions = [text.index(rule) for rule in ("\\toprule", "\\midrule", "\\bottomrule")]
    assert positions == sorted(positions)
    uncommented = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
    depth = 0
    for char in re.sub(r"\\[{}]", "", uncommented):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    header = uncommented.split("\\toprule", 1)[1].split("\\midrule", 1)[0]
    columns = len(layout)
    for row in [header.strip()] + _latex_rows(text):
        assert row.endswith("\\\\") and len(re.findall(r"(?<!\\)&", row)) == columns - 1, row
    assert f"\\multicolumn{{{columns}}}{{l}}" in text.split("\\bottomrule")[1]
    assert "\\textbf{0.910 $\\pm$ 0.010}" in text  # best per task in bold, mean +- std
    assert "\\textbf{12.500 $\\pm$ 0.500}" in text  # lower-is-better perplexity: smallest is best


def test_latex_escapes_special_characters(tmp_path):
    assert latex_escape("a_b & 50% #1 $x {y} ~^\\") == (
        "a\\_b \\& 50\\% \\#1 \\$x \\{y\\} \\textasciitilde{}\\textasciicircum{}\\textbackslash{}"
    )
    run_dir = write_run(tmp_path / "run", [cell_result("my_task & 50%", "lora", 0, 0.5, memory=1e9, tokens_per_s=10.0)])
    row = _latex_rows(export(run_dir, "latex"))[0]
    assert row.startswith("my\\_task \\& 50\\% & accuracy & lora &")


def test_html_has_every_section_and_no_external_reference(run_dir):
    page = render_html(run_dir)
    for heading in (
        "Overview: primary metric per task",
        "Which strategy should I pick?",
        "Task sentiment",
        "Task qa",
        "Failed cells",
        "Provenance",
        "Examples",
        "Confusion matrices",
    ):
        assert heading in page
    assert "CUDA out of memory while allocating" in page and "oom" in page
    assert page.count("<svg") == 2 * 2 + 1  # two scatter charts per task; breakdown bars where measured
    assert "Pareto front" in page and "peak memory (process peak RSS)" in page
    assert re.search(r"https?:|//[a-z]|\burl\(|@import", page, re.IGNORECASE) is None
    assert re.search(r"<(img|iframe|object|embed|link(?! rel=\"icon\" href=\"data:,\"))\b", page) is None


def test_overview_marks_best_and_ties(run_dir):
    overview = report_context(run_dir)["overview"]
    rows = {row["strategy"]: row for row in overview["rows"]}
    tasks = [t["name"] for t in overview["tasks"]]
    sentiment = tasks.index("sentiment")
    assert rows["full"]["cells"][sentiment]["marker"] == "★"
    assert rows["lora"]["cells"][sentiment]["marker"] == "≈"
    assert rows["adapter"]["cells"][sentiment]["marker"] == ""
    # beats every other strategy on both tasks, but lora ties it within noise on both: half a win each
    assert rows["full"]["win_rate"]["sort"] == pytest.approx(((1 + 0.5 + 1) / 3 + (1 + 0.5) / 2) / 2)


def test_memory_breakdown_is_drawn_or_said_missing(run_dir, tmp_path):
    assert "training memory by part" in render_html(run_dir)
    single = write_run(tmp_path / "single", single_seed_results())
    page = render_html(single)
    assert "training memory by part" not in page and "not measured" in page
    assert "Single seed" in page and "Confusion matrices" not in page and "Examples" not in page


def test_markup_from_configs_datasets_and_outputs_is_escaped(tmp_path):
    run_dir = write_run(tmp_path / "run", injected_results())
    page = render_html(run_dir)
    assert XSS_SCRIPT not in page and XSS_IMG not in page and "<img" not in page
    assert page.count("<script") == 1  # the report's own sorting script only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "onerror=alert" not in re.sub(r"&lt;img src=x onerror=alert\(2\)&gt;", "", page)


def test_compare_mode_shows_per_cell_deltas_flagged_beyond_noise(run_dir, tmp_path):
    shifted = [dict(r) for r in three_seed_results()]
    for result in shifted:
        if result["task"] == "sentiment" and result["strategy"] == "adapter" and result["status"] == "ok":
            result["primary_value"] -= 0.2  # a real drop
        if result["task"] == "sentiment" and result["strategy"] == "lora" and result["status"] == "ok":
            result["primary_value"] += 0.002  # noise
    baseline = write_run(tmp_path / "baseline", shifted)
    compare = report_context(run_dir, baseline)["compare"]
    rows = {(r["task"], r["strategy"], r["seed"]): r for r in compare["rows"]}
    assert rows[("sentiment", "adapter", 0)]["delta"] == pytest.approx(0.2)
    assert rows[("sentiment", "adapter", 0)]["beyond_noise"]
    assert rows[("sentiment", "lora", 1)]["delta"] == pytest.approx(-0.002)
    assert not rows[("sentiment", "lora", 1)]["beyond_noise"]
    assert rows[("sentiment", "lora", 1)]["verdict"] == "within noise"
    assert rows[("qa", "adapter", 0)]["verdict"] == "status changed" and len(rows) == 22
    out = tmp_path / "compare.html"
    assert main(["report", str(run_dir), "--baseline", str(baseline), "--out", str(out)]) == 0
    assert "Compared with baseline run" in out.read_text(encoding="utf-8")


def test_report_command_writes_html_by_default_and_exports_on_request(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["report", str(run_dir), "--format", "latex"]) == 0
    assert "\\begin{tabular}" in capsys.readouterr().out
    assert main(["report", str(run_dir), "--format", "json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) >= {"cells", "aggregates"}


def test_templates_ship_with_the_package():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"harness.report" = ["templates/*"]' in pyproject


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)
PAGE_WIDTH, PAGE_HEIGHT = 1280, 900


def _open(path: Path, profile: Path) -> DevToolsPage:
    page = DevToolsPage(profile)
    for domain in ("Page", "Runtime", "Log", "Network"):
        page.page(f"{domain}.enable")
    page.page(
        "Emulation.setDeviceMetricsOverride", width=PAGE_WIDTH, height=PAGE_HEIGHT, deviceScaleFactor=1, mobile=False
    )
    page.page("Page.navigate", url=path.resolve().as_uri())
    page.wait_for("Page.loadEventFired")
    page.evaluate("new Promise(done => setTimeout(done, 200))")  # let late errors arrive
    return page


def _problems(page: DevToolsPage, own_url: str) -> tuple[list, list]:
    errors = [
        e
        for e in page.events
        if e["method"] == "Runtime.exceptionThrown"
        or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    requests = [
        e["params"]["request"]["url"]
        for e in page.events
        if e["method"] == "Network.requestWillBeSent" and e["params"]["request"]["url"] != own_url
    ]
    return errors, requests


@needs_chromium
def test_network_check_would_see_a_request(tmp_path):
    """Control for the browser test: a page that fetches something is caught."""
    path = tmp_path / "leaky.html"
    path.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    page = _open(path, tmp_path / "profile")
    try:
        _, requests = _problems(page, path.resolve().as_uri())
    finally:
        page.close()
    assert requests == ["http://127.0.0.1:9/x.png"]


@needs_chromium
def test_report_in_headless_chromium(tmp_path):
    run_dir = write_run(tmp_path / "run", three_seed_results() + injected_results())
    path = tmp_path / "report.html"
    path.write_text(render_html(run_dir), encoding="utf-8")
    page = _open(path, tmp_path / "profile")
    try:
        errors, requests = _problems(page, path.resolve().as_uri())
        assert errors == [] and requests == []
        assert page.evaluate("document.querySelectorAll('img, iframe').length") == 0
        assert page.evaluate("document.scripts.length") == 1
        png = screenshot_png(page, PAGE_WIDTH, PAGE_HEIGHT)
        (tmp_path / "screenshot.png").write_bytes(png)
        width, height, rows = png_pixels(png)
        assert (width, height) == (PAGE_WIDTH, PAGE_HEIGHT)
        background = rows[0][:3]
        pixels = [row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 3 * 4)]
        assert len(set(pixels)) > 50 and sum(p != background for p in pixels) > len(pixels) // 20

        order = (
            "Array.from(document.querySelector('section[data-task=sentiment] table.detail').tBodies[0].rows)"
            ".map(r => r.cells[0].textContent.trim())"
        )
        before = page.evaluate(order)
        box = page.evaluate(
            "(() => { const th = document.querySelector("
            # the primary-metric header: after strategy, settings and seeds
            "'section[data-task=sentiment] table.detail thead th:nth-child(4)'); th.scrollIntoView();"
            " const r = th.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            page.page("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        ascending = page.evaluate(order)
        page.page("Input.dispatchMouseEvent", type="mousePressed", x=box[0], y=box[1], button="left", clickCount=1)
        page.page("Input.dispatchMouseEvent", type="mouseReleased", x=box[0], y=box[1], button="left", clickCount=1)
        descending = page.evaluate(order)
        assert _problems(page, path.resolve().as_uri()) == ([], [])
    finally:
        page.close()
    assert before == ["none", "full", "adapter", "lora"]  # strategies in the usual order
    assert ascending == ["none", "adapter", "lora", "full"]  # by mean accuracy 0.50 < 0.71 < 0.90 < 0.91
    assert descending == list(reversed(ascending)) and ascending != before


def test_each_task_shows_its_data_card_or_says_it_is_not_recorded(tmp_path):
    card = {
        "train_rows": 240,
        "eval_rows": 60,
        "labels": {"neg": 146, "pos": 94},
        "majority_label": "neg",
        "majority_share": 146 / 240,
        "class_weights": "balanced",
        "class_weights_why": "auto: the majority class 'neg' holds 61% of the 240 training rows, above 60%",
        "eval_in_train": 0,
        "eval_near_train": 2,
        "tokens": {"p50": 20, "p90": 41, "p99": 60, "max": 90},
        "max_length": 64,
        "longer_share": 0.004,
        "longer_rows": 1,
        "longer_means": "truncated",
        "warnings": ["near-duplicates: 2 of 60 evaluation rows have a training row's input"],
        "relaxed": ["rare_class"],
    }
    results = three_seed_results()
    for result in results:
        if result["task"] == "sentiment":
            result["data"]["card"] = card
    page = render_html(write_run(tmp_path / "run", results))
    sentiment = page[page.index('data-task="sentiment"') :]
    sentiment = sentiment[: sentiment.index("</section>")]
    assert "<h3>Data card</h3>" in sentiment
    for text in (
        "rows: 240 train, 60 eval",
        "labels: neg 146, pos 94; majority 61%; class weights balanced",
        "tokens per row: p50 20, p90 41, p99 60, max 90; 0.4% longer than max_length = 64 (truncated)",
        "eval rows also in train: 0 whole rows; 2 with the same input",
        "relaxed checks: rare_class",
        "warning: near-duplicates: 2 of 60 evaluation rows",
    ):
        assert text in sentiment, text
    qa = page[page.index('data-task="qa"') :]
    assert "Not recorded: these results carry no <code>data.card</code>" in qa[: qa.index("</section>")]


@needs_chromium
def test_every_shipped_task_has_its_data_card_in_list_and_in_the_report(tmp_path, capsys):
    """`tunebench list --data` gives each shipped task a card with its majority share (classification) and
    the share of rows longer than max_length; results carrying those cards show them in the report."""
    assert main(["list", "--data", "--json", "tasks", "tasks/heldout"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 15
    results = []
    for row in rows:
        card = row["data_card"]
        assert 0 <= card["longer_share"] <= 1 and card["tokens"]["p99"] > 0, row["name"]
        assert ("majority_share" in card) == (row["scenario"] == "classification"), row["name"]
        result = cell_result(row["name"], "none", 0, 0.5, memory=1e9, tokens_per_s=None)
        result["data"]["card"] = card
        results.append(result)
    path = tmp_path / "report.html"
    path.write_text(render_html(write_run(tmp_path / "run", results)), encoding="utf-8")
    page = _open(path, tmp_path / "profile")
    try:
        assert _problems(page, path.resolve().as_uri()) == ([], [])
        shown = page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('section.task')).map(s => [s.dataset.task,"
            " Array.from(s.querySelectorAll('.data-card li')).map(li => li.textContent)]))"
        )
    finally:
        page.close()
    assert set(shown) == {row["name"] for row in rows}
    for row in rows:
        lines = shown[row["name"]]
        share = f"{row['data_card']['longer_share']:.1%} longer than max_length = {row['data_card']['max_length']}"
        assert any(share in line for line in lines), (row["name"], lines)
        if row["scenario"] == "classification":
            assert any(f"majority {row['data_card']['majority_share']:.0%}" in line for line in lines), lines
