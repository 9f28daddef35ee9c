"""A booktabs table fragment for papers: mean ± std per (task, strategy), best in bold, ties marked."""

from __future__ import annotations

from harness.figures import shown_figures
from harness.report.format import did_not_learn, eval_noise_only, missing, ordered
from harness.results.aggregate import TIE, UNKNOWN

HEADER = ("Task", "Metric", "Strategy", "Score", "Peak mem.\\ (GiB)", "Train tok/s", "Trainable (\\%)", "$n$")
TIE_MARK, UNKNOWN_MARK, NOT_LEARNED_MARK = "$^{\\dagger}$", "$^{*}$", "$^{\\times}$"
LATEX_SPECIALS = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "<": "\\textless{}",
    ">": "\\textgreater{}",
}


def latex_escape(text) -> str:
    """Text safe inside a LaTeX table cell."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _fixed(value, digits: int) -> str:
    return "--" if missing(value) else f"{float(value):,.{digits}f}".replace(",", "{,}")


def _score(row) -> str:
    if int(row["n"]) == 0:
        return "failed"
    mean, std = row["primary_value_mean"], row["primary_value_std"]
    text = _fixed(mean, 3) + ("" if missing(std) else f" $\\pm$ {_fixed(std, 3)}")
    if row["best"]:
        text = f"\\textbf{{{text}}}"
    if row["noise_vs_best"] == TIE:
        text += TIE_MARK
    elif row["noise_vs_best"] == UNKNOWN:
        text += UNKNOWN_MARK
    if did_not_learn(row):
        text += NOT_LEARNED_MARK
    return text


def latex_table(aggregates, sources: dict[str, str] | None = None) -> str:
    """A tabular (needs \\usepackage{booktabs}); notes for the markers and the data sources follow
    the bottom rule."""
    shown = shown_figures(aggregates)
    header = list(HEADER[:-1]) + [latex_escape(f.header) for f in shown] + [HEADER[-1]]
    lines = [
        "% tunebench: mean $\\pm$ sample std over seeds; needs \\usepackage{booktabs}",
        f"\\begin{{tabular}}{{lll{'r' * (len(header) - 3)}}}",
        "\\toprule",
        " & ".join(header) + " \\\\",
        "\\midrule",
    ]
    previous_task, markers = None, set()
    for _, row in ordered(aggregates).iterrows():
        first_of_task = row["task"] != previous_task
        if first_of_task and previous_task is not None:
            lines.append("\\midrule")
        previous_task = row["task"]
        markers.add(row["noise_vs_best"])
        markers |= {"eval only"} if eval_noise_only(row) else set()
        markers |= {"not learned"} if did_not_learn(row) else set()
        memory = row.get("peak_memory_bytes_mean")
        cells = [
            latex_escape(row["task"]) if first_of_task else "",
            latex_escape(row["primary_metric"]) if first_of_task else "",
            latex_escape(row["strategy"]),
            _score(row),
            _fixed(None if missing(memory) else memory / 2**30, 2),
            _fixed(row.get("train_tokens_per_s_mean"), 0),
            _fixed(row.get("trainable_percent_mean"), 2),
        ]
        cells += [_fixed(row.get(f"{f.name}_mean"), 2) for f in shown] + [str(int(row["n"]))]
        lines.append(" & ".join(cells) + " \\\\")
    lines.append("\\bottomrule")
    notes = ["Bold: best mean per task."]
    if TIE in markers:
        notes.append(
            f"{TIE_MARK} within noise of the best (paired test at the 5\\% level where per-item results "
            f"exist, else 95\\% confidence intervals overlap, or equal means)."
        )
    if "eval only" in markers:
        notes.append("With one seed the paired test covers eval-sampling noise only; seed noise is unknown.")
    if "not learned" in markers:
        notes.append(
            f"{NOT_LEARNED_MARK} did not learn (fails the learning checks: no better than the untuned model or "
            "the trivial reference beyond eval noise, constant predictions, or a flat or diverging loss)."
        )
    if UNKNOWN in markers:
        notes.append(f"{UNKNOWN_MARK} single seed: noise unknown.")
    lines.append(f"\\multicolumn{{{len(header)}}}{{l}}{{\\footnotesize {' '.join(notes)}}} \\\\")
    for task, text in sorted((sources or {}).items()):
        lines.append(
            f"\\multicolumn{{{len(header)}}}{{l}}{{\\footnotesize Data ({latex_escape(task)}): "
            f"{latex_escape(text)}}} \\\\"
        )
    lines.append("\\end{tabular}")
    return "\n".join(lines) + "\n"
