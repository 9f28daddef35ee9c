"""The data check: what would silently skew a comparison, found before any cell runs.

Errors stop `validate` and `run` (exit 2, one line each naming file, row, field and the fix) and a
cell refuses them too: empty labels, texts or targets, labels that differ only by case or surrounding
whitespace, classes too small to learn or score, evaluation rows whose input a training row has,
and each scenario's own (an extractive answer not in its context, a conversation that does not end
with the assistant's turn). `[data] checks = { CHECK = "warn" }` turns a check into a warning where a
user knows their data is like that; the result records which were relaxed.

Warnings and figures make the data card (`tunebench list --data`, each result's `data.card`, the
report): rows, the label distribution and majority share with the class weighting that follows,
near-duplicates across the split, rows the transforms dropped and why, and, where a tokenizer is at
hand, token-length percentiles against `model.max_length` with the share of rows longer than that.

Rows are numbered as in their source file after the task's transforms (row 1 is the first data row).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.values import missing

MIN_CLASS_ROWS = 5  # fewer training rows of a class than this: it can be neither learned nor scored reliably
LONG_SHARE_WARNING = 0.05  # more than this share of rows longer than max_length is a warning
CHECKS = {
    "empty_label": "a row's label is empty",
    "label_variants": "labels that differ only by case or surrounding whitespace",
    "rare_class": f"a class with fewer than {MIN_CLASS_ROWS} training rows",
    "empty_text": "a row's input text is empty",
    "empty_target": "a row's target (the reference the model learns to produce) is empty",
    "train_eval_overlap": "an evaluation row that is also a training row (every field, whitespace normalised)",
    "answer_not_in_context": "an extractive answer that its context does not contain",
    "last_turn_not_assistant": "a conversation that does not end with the assistant's turn",
}
FIXED = frozenset({"last_turn_not_assistant"})  # the scenario cannot train on such a row: never relaxed
LEVELS = ("error", "warn")


def relax_problems(checks: dict[str, str]) -> list[tuple[str, str]]:
    """(key, problem) for a `[data] checks` table."""
    problems = []
    for code, level in checks.items():
        if code not in CHECKS:
            problems.append((f"checks.{code}", f"unknown check; one of {', '.join(CHECKS)}"))
        elif level not in LEVELS:
            problems.append((f"checks.{code}", f"must be one of {', '.join(LEVELS)}, got {level!r}"))
        elif code in FIXED and level == "warn":
            problems.append((f"checks.{code}", "cannot be relaxed: the scenario cannot train on such a row"))
    return problems


@dataclass(frozen=True)
class Finding:
    """One failed check at one place in the data."""

    check: str
    where: str  # the source file
    row: int | None  # 1-based, as in the file after the transforms; None for the data as a whole
    field: str
    column: str
    message: str
    fix: str

    def line(self, relaxed: bool = False) -> str:
        at = f"row {self.row}: " if self.row is not None else ""
        column = f" (column {self.column!r})" if self.column != self.field else ""
        tail = (
            "relaxed by [data] checks"
            if relaxed
            else f'fix: {self.fix}, or relax: [data] checks = {{ {self.check} = "warn" }}'
        )
        if not relaxed and self.check in FIXED:
            tail = f"fix: {self.fix}"
        return f"{self.where}: {at}field {self.field}{column}: {self.message} [{self.check}]; {tail}"


@dataclass
class DataCard:
    """What the check found: errors (not relaxed), warnings, and the figures of the card."""

    errors: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    relaxed: list[str] = field(default_factory=list)  # checks the task relaxed (whether they fired or not)

    def record(self) -> dict[str, Any]:
        """The card as a result records it."""
        return {**self.figures, "warnings": self.warnings, "relaxed": self.relaxed}


def _normal(text: str) -> str:
    return " ".join(str(text).split())


def _near(text: str) -> str:
    """Case, accents, punctuation and spacing aside: what a near-duplicate shares."""
    folded = unicodedata.normalize("NFKD", str(text).casefold())
    return " ".join(re.findall(r"\w+", folded))


def _empty(value: Any) -> bool:
    return missing(value) or (isinstance(value, str) and not value.strip())


def check_rows(
    task,
    scenario,
    tables: list[tuple[str, list[dict]]],
    train: list[dict],
    evaluation: list[dict],
    used: tuple[list[dict], list[dict]] | None = None,
    dropped: list[dict] | None = None,
) -> DataCard:
    """The data check of `task` (a TaskSpec) under `scenario` (its registered class): `tables` are the
    source files' rows (after transforms, harness.data.read_tables); `train` and `evaluation` the two
    sides of the data before sample caps, the tables' own objects (so each names its file and row). The
    checks judge the whole of each side, so that they say the same under every profile; the figures
    describe the rows the cells use (`used`: the capped sides, default the whole)."""
    options = task.scenario
    levels = dict(task.data.checks)
    mapping = dict(task.data.fields)
    place = {id(row): (where, number) for where, rows in tables for number, row in enumerate(rows, start=1)}
    findings: list[Finding] = []

    def found(check: str, row: dict, name: str, message: str, fix: str) -> None:
        where, number = place.get(id(row), (tables[0][0], None))
        findings.append(Finding(check, where, number, name, mapping.get(name, name), message, fix))

    roles = scenario.field_roles(options)
    empty = {"label": "empty_label", "target": "empty_target", "text": "empty_text"}
    fixes = {
        "label": "give the row its label, or drop it (a keep transform)",
        "target": "give the row its reference, or drop it",
        "text": "drop the row, or fill the text",
    }
    for rows in (train, evaluation):
        for row in rows:
            for name, role in roles.items():
                value = row.get(name)
                if not isinstance(value, (dict, list)) and _empty(value):
                    found(empty[role], row, name, f"{role} is empty", fixes[role])
            for name, check, message, fix in scenario.row_problems(options, row):
                found(check, row, name, message, fix)
    used_train, used_eval = used or (train, evaluation)
    figures: dict[str, Any] = {"train_rows": len(used_train), "eval_rows": len(used_eval)}
    if "label" in roles:
        _label_checks(train, evaluation, found)
        figures.update(_label_figures(task, used_train, used_eval))
    _overlap(scenario, options, train, evaluation, found)
    figures.update(_overlap(scenario, options, used_train, used_eval))
    if dropped:
        figures["dropped"] = dropped
    card = DataCard(figures=figures, relaxed=sorted(c for c, level in levels.items() if level == "warn"))
    for finding in _first_per_check(findings):
        if levels.get(finding.check) == "warn":
            card.warnings.append(finding.line(relaxed=True))
        else:
            card.errors.append(finding)
    card.warnings.extend(_warnings(figures))
    return card


def _first_per_check(findings: list[Finding]) -> list[Finding]:
    """The first finding of each check, with how many more there are: one line per kind of problem."""
    counts = Counter(f.check for f in findings)
    out, seen = [], set()
    for finding in findings:
        if finding.check in seen:
            continue
        seen.add(finding.check)
        more = counts[finding.check] - 1
        message = finding.message + (f" (and {more} more row(s) like it)" if more else "")
        out.append(dataclasses.replace(finding, message=message))
    return out


def _label_checks(train: list[dict], evaluation: list[dict], found) -> None:
    """Labels that differ only by case or surrounding whitespace; classes too small to learn or score."""
    counts = Counter(str(r["label"]) for r in train if not _empty(r.get("label")))
    variants: dict[str, list[str]] = {}
    for label in sorted(set(counts) | {str(r["label"]) for r in evaluation if not _empty(r.get("label"))}):
        variants.setdefault(label.strip().casefold(), []).append(label)
    for group in variants.values():
        if len(group) > 1:
            common = max(group, key=lambda label: counts[label])
            odd = next(label for label in group if label != common)
            row = next(r for r in [*train, *evaluation] if str(r.get("label")) == odd)
            found(
                "label_variants",
                row,
                "label",
                f"{odd!r} differs from {common!r} only by case or surrounding whitespace, so it would be "
                f"a class of its own",
                f"write it as {common!r} (a relabel transform maps it)",
            )
    for label, count in sorted(counts.items()):
        if count < MIN_CLASS_ROWS:
            row = next(r for r in train if str(r.get("label")) == label)
            found(
                "rare_class",
                row,
                "label",
                f"class {label!r} has {count} training row(s), fewer than {MIN_CLASS_ROWS}",
                "add rows of that class, merge it into another, or drop it (a keep transform)",
            )


def _label_figures(task, train: list[dict], evaluation: list[dict]) -> dict[str, Any]:
    """The label distribution of the training rows, the majority share and the class weighting it decides."""
    from harness.scenarios.classification import class_weighting

    labels = [str(r["label"]) for r in train if not _empty(r.get("label"))]
    counts = Counter(labels)
    figures: dict[str, Any] = {"labels": dict(counts.most_common())}
    if labels:
        majority, count = counts.most_common(1)[0]
        weighting, why = class_weighting(getattr(task.scenario, "class_weights", "none"), labels)
        figures.update(majority_label=majority, majority_share=count / len(labels), class_weights=weighting)
        figures["class_weights_why"] = why
    if evaluation:
        eval_labels = Counter(str(r["label"]) for r in evaluation)
        figures["eval_majority_share"] = eval_labels.most_common(1)[0][1] / len(evaluation)
    return figures


def _overlap(scenario, options, train, evaluation, found=None) -> dict[str, Any]:
    """Evaluation rows that also appear in train: the same row (every field, whitespace normalised) is an
    error (with `found`), for its score rewards memorising; the same input (case, accents and punctuation
    aside) is a figure."""
    exact = {_row_key(r) for r in train}
    near = {_near(scenario.input_key(options, r)) for r in train}
    duplicates = [r for r in evaluation if _row_key(r) in exact]
    close = sum(_near(scenario.input_key(options, r)) in near for r in evaluation)
    name = next((f for f, role in scenario.field_roles(options).items() if role == "text"), "text")
    for row in duplicates if found is not None else ():
        found(
            "train_eval_overlap",
            row,
            name,
            "this evaluation row is also a training row (every field alike), so its score rewards memorising",
            "remove it from one side (a drop_duplicates transform before the split does)",
        )
    return {"eval_in_train": len(duplicates), "eval_near_train": close}


def _row_key(row: dict) -> str:
    return _normal(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str))


def token_figures(lengths: list[int], max_length: int, over: str) -> dict[str, Any]:
    """Token-length percentiles of the rows (untruncated) against max_length, and the share longer."""
    if not lengths:
        return {}
    ordered = sorted(lengths)

    def percentile(p: float) -> int:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]

    longer = sum(n > max_length for n in lengths)
    return {
        "tokens": {"p50": percentile(50), "p90": percentile(90), "p99": percentile(99), "max": ordered[-1]},
        "max_length": max_length,
        "longer_share": longer / len(lengths),
        "longer_rows": longer,
        "longer_means": over,
    }


def with_tokens(card: DataCard, lengths: list[int], max_length: int, over: str) -> DataCard:
    """The card with the token figures of `lengths` (rows as used, untruncated) and their warning."""
    card.figures.update(token_figures(lengths, max_length, over))
    card.warnings = [w for w in card.warnings if not w.startswith("tokens:")] + _token_warning(card.figures)
    return card


def _token_warning(figures: dict) -> list[str]:
    share = figures.get("longer_share")
    if share is None or share <= LONG_SHARE_WARNING:
        return []
    tokens = figures["tokens"]
    return [
        f"tokens: {share:.0%} of the rows are longer than max_length = {figures['max_length']} and get "
        f"{figures['longer_means']} (p99 {tokens['p99']}, max {tokens['max']} tokens); raise model.max_length "
        f"if what is cut matters"
    ]


def _warnings(figures: dict) -> list[str]:
    out = []
    if (share := figures.get("majority_share")) is not None and figures.get("class_weights") == "none" and share > 0.6:
        out.append(
            f"labels: the majority class {figures['majority_label']!r} holds {share:.0%} of the training rows and "
            f"the classes are not weighed; a strategy that predicts it everywhere scores {share:.0%} accuracy"
        )
    if figures.get("eval_near_train"):
        out.append(
            f"near-duplicates: {figures['eval_near_train']} of {figures['eval_rows']} evaluation rows have a training "
            f"row's input once case, accents and punctuation are set aside"
        )
    for drop in figures.get("dropped", []):
        out.append(f"transforms: {drop['transform']} dropped {drop['rows']} of {drop['of']} rows ({drop['why']})")
    return out + _token_warning(figures)


def card_lines(card: dict) -> list[str]:
    """The data card in a few lines of text (`tunebench list --data`; the report shows the same)."""
    lines = [f"rows: {card['train_rows']} train, {card['eval_rows']} eval"]
    if "labels" in card:
        shown = ", ".join(f"{label} {count}" for label, count in list(card["labels"].items())[:8])
        more = f", and {len(card['labels']) - 8} more" if len(card["labels"]) > 8 else ""
        lines.append(
            f"labels: {shown}{more}; majority {card.get('majority_share', 0):.0%}; class weights "
            f"{card.get('class_weights')} ({card.get('class_weights_why')})"
        )
    if "tokens" in card:
        tokens = card["tokens"]
        lines.append(
            f"tokens per row: p50 {tokens['p50']}, p90 {tokens['p90']}, p99 {tokens['p99']}, max {tokens['max']}; "
            f"{card['longer_share']:.1%} longer than max_length = {card['max_length']} ({card['longer_means']})"
        )
    else:
        lines.append("tokens per row: not measured (no tokenizer loaded)")
    lines.append(
        f"eval rows also in train: {card['eval_in_train']} whole rows; {card['eval_near_train']} with the same "
        f"input (case, accents, punctuation aside)"
    )
    if card.get("relaxed"):
        lines.append(f"relaxed checks: {', '.join(card['relaxed'])}")
    return lines + [f"warning: {w}" for w in card.get("warnings", [])]
