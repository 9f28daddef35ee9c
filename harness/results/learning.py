"""Did a tuned cell learn? A row that did not learn says nothing about its method, only about a setting,
so it is marked wherever results are shown and `recommend` does not pick it.

A cell records the checks it can make alone (`learning` in its result, made by `cell_learning`):
- `below_reference`: its primary metric does not beat the task's trivial reference (the majority class
  for classification, the commonest training answer for generation where one repeats, the empty answer
  for extractive QA) beyond
  eval noise: a paired test on the same items at the 5% level (McNemar on right/wrong items, a paired
  bootstrap on item scores, a paired bootstrap of macro-F1 itself for macro-F1);
- `constant_predictions`: one class takes >= 95% of its predictions while the eval data's majority share
  is lower (classification), or one output answers >= 90% of the prompts (generation);
- `loss_flat` / `loss_diverged`: its final training loss (the mean of the last LOSS_WINDOW steps) is
  above 90% of the first (the mean of the first LOSS_WINDOW), or not finite / above 1.5x the first.
  These fail a cell only where the eval checks do not show it learned (`verdict`); otherwise they are
  kept as `warnings`.
`load_results` completes them across cells (`with_untuned`): `below_reference` also when the cell does
not beat the untuned `none` cell of the same task, seed and eval items beyond eval noise. Its
columns `learned`, `learning_reasons` (codes) and `learning_detail` (a sentence each) carry the whole
verdict into the aggregates, the exports, the report and `recommend`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from harness.metrics import CORRECT, METRICS, SCORE, compute, higher_is_better, per_item
from harness.results.significance import LEVEL, macro_f1_bootstrap_p, paired_test

LOSS_WINDOW = 5  # steps averaged at each end of training
FLAT_RATIO = 0.9  # final loss above this share of the first: it hardly moved
DIVERGED_RATIO = 1.5  # final loss above this multiple of the first: it ran away
CONSTANT_CLASS_SHARE = 0.95  # one class takes this share of predictions (classification)
CONSTANT_OUTPUT_SHARE = 0.9  # one output answers this share of prompts (generation)

FIXES = {
    "below_reference": (
        "search its learning rate (`tunebench run --search`), train more steps ([training] epochs), "
        'or, on imbalanced classes, weigh them ([scenario] class_weights = "balanced")'
    ),
    "constant_predictions": (
        'weigh the classes ([scenario] class_weights = "balanced", where they are not weighed yet), search the '
        "learning rate (`--search`), or train more steps"
    ),
    "loss_flat": "search the learning rate (`--search`: it may be too low) or train more steps ([training] epochs)",
    "loss_diverged": "lower the learning rate or search it (`--search`)",
}


@dataclass(frozen=True)
class Comparison:
    """The cell's primary metric against a reference's on the same items."""

    reference: str  # what it was compared with, in words
    value: float
    reference_value: float
    test: str
    p_value: float

    def beats(self, higher: bool) -> bool:
        better = self.value > self.reference_value if higher else self.value < self.reference_value
        return better and self.p_value < LEVEL

    def record(self) -> dict:
        return {
            "reference": self.reference,
            "value": self.value,
            "reference_value": self.reference_value,
            "test": self.test,
            "p_value": self.p_value,
        }


def reason(code: str, finding: str) -> dict:
    """A reason: its code and one sentence, what was found then what to do."""
    return {"code": code, "message": f"{finding}; {FIXES[code]}."}


def compare(
    metric: str,
    reference: str,
    values: tuple[float, float],
    predictions: list,
    reference_predictions: list,
    references: list,
    item_values: tuple[str | None, list] | None = None,
    reference_item_values: tuple[str | None, list] | None = None,
) -> Comparison | None:
    """The paired test of a cell's predictions against a reference's on the same items (`values`: the
    metric of each), or None when the metric does not split into items (distinct-n, BLEU, lm-eval)."""
    if metric == "macro_f1":
        p_value = macro_f1_bootstrap_p(predictions, reference_predictions, references)
        return Comparison(reference, *values, "paired bootstrap of macro-F1 over items", p_value)
    measure, mine = item_values or per_item(metric, predictions, references, {})
    other_measure, other = reference_item_values or per_item(metric, reference_predictions, references, {})
    if measure not in (CORRECT, SCORE) or measure != other_measure or len(mine) != len(other) or not mine:
        return None
    test = paired_test({0: [{measure: v} for v in mine]}, {0: [{measure: v} for v in other]}, measure, min_seeds=1)
    if test is None:
        return None
    return Comparison(reference, *values, f"{test.test} on {test.items} items", test.p_value)


def loss_reasons(training: dict | None) -> tuple[list[dict], dict]:
    """loss_flat / loss_diverged from the training loss curve, and what was measured."""
    curve = [float(x) for x in (training or {}).get("loss_curve") or []]
    if not curve:
        return [], {}
    window = min(LOSS_WINDOW, max(1, len(curve) // 2))
    first, final = sum(curve[:window]) / window, sum(curve[-window:]) / window
    measured = {"first_loss": first, "final_loss": final, "window": window, "steps": len(curve)}
    if not all(math.isfinite(x) for x in curve) or (first > 0 and final > DIVERGED_RATIO * first):
        return [
            reason(
                "loss_diverged",
                f"the training loss went from {first:.3g} to {final:.3g} (means of the first and last "
                f"{window} steps): it ran away",
            )
        ], measured
    if first > 0 and final > FLAT_RATIO * first:
        return [
            reason(
                "loss_flat",
                f"the training loss went from {first:.3g} to {final:.3g} over {len(curve)} steps "
                f"(means of the first and last {window}), less than a {1 - FLAT_RATIO:.0%} drop",
            )
        ], measured
    return [], measured


def constant_reasons(predictions: list, references: list, labels: bool) -> tuple[list[dict], dict]:
    """constant_predictions: one class (labels) or one output (text) answering nearly everything."""
    if not predictions:
        return [], {}
    keyed = [str(p) if labels else " ".join(str(p).split()).lower() for p in predictions]
    top, count = Counter(keyed).most_common(1)[0]
    share = count / len(keyed)
    measured: dict = {"top_prediction": top, "top_share": share}
    if labels:
        majority = Counter(str(r) for r in references).most_common(1)[0][1] / len(references)
        measured["eval_majority_share"] = majority
        if share >= CONSTANT_CLASS_SHARE and majority < CONSTANT_CLASS_SHARE:
            return [
                reason(
                    "constant_predictions",
                    f"it predicts {top!r} for {share:.0%} of the eval rows, where that many share no class "
                    f"(the majority class is {majority:.0%})",
                )
            ], measured
    elif share >= CONSTANT_OUTPUT_SHARE and len(set(map(str, references))) > 1:
        return [
            reason("constant_predictions", f"it gives the same output ({top[:40]!r}) for {share:.0%} of the prompts")
        ], measured
    return [], measured


def below_reference_reason(comparison: Comparison, metric: str) -> dict:
    return reason(
        "below_reference",
        f"its {metric} {comparison.value:.3f} does not beat {comparison.reference} "
        f"({comparison.reference_value:.3f}) beyond eval noise ({comparison.test}, p = {comparison.p_value:.3g})",
    )


def verdict(evaluation_reasons: list[dict], loss_findings: list[dict], beaten: list[str], checks: dict) -> dict:
    """The learning record from its parts. A flat or diverging loss fails a cell unless the eval evidence
    shows it learned (it beat a reference beyond eval noise and no evaluation check failed): then the
    finding is kept as a warning, since a loss that fell 8% can come with a macro-F1 of 0.95 whose margins
    are still small."""
    shown = not evaluation_reasons and bool(beaten)
    reasons = evaluation_reasons + ([] if shown else loss_findings)
    return {
        "learned": not reasons,
        "reasons": reasons,
        "warnings": loss_findings if shown else [],
        "loss_findings": loss_findings,
        "beaten": beaten,
        "checks": checks,
    }


def cell_learning(
    metric: str, value: float, evaluation, training: dict | None, labels: bool, item_values: tuple[str | None, list]
) -> dict:
    """The checks a tuned cell makes alone: `learned`, `reasons` (and `warnings`) and what each check
    measured; `beaten` lists the references it beat beyond eval noise."""
    higher = higher_is_better(metric)
    checks: dict = {}
    loss_findings, checks["loss"] = loss_reasons(training)
    reasons, checks["predictions"] = constant_reasons(evaluation.predictions, evaluation.references, labels)
    beaten = []
    if evaluation.trivial is not None and metric in METRICS and METRICS.get(metric).compute is not None:
        name, trivial = evaluation.trivial
        values = (value, compute(metric, trivial, evaluation.references))
        comparison = compare(metric, name, values, evaluation.predictions, trivial, evaluation.references, item_values)
        if comparison is not None:
            checks["trivial_reference"] = comparison.record()
            if comparison.beats(higher):
                beaten.append(name)
            else:
                reasons.append(below_reference_reason(comparison, metric))
    return verdict(reasons, loss_findings, beaten, checks)


def with_untuned(learning: dict | None, comparison: Comparison | None, metric: str) -> dict | None:
    """A cell's `learning` record completed with its comparison against the untuned `none` cell."""
    if learning is None:
        return None
    loss_codes = {"loss_flat", "loss_diverged"}
    findings = learning.get("loss_findings")
    if findings is None:  # a record without the parts: its reasons stand as written
        findings = [r for r in learning.get("reasons") or [] if r["code"] in loss_codes]
    evaluation = [r for r in learning.get("reasons") or [] if r["code"] not in loss_codes]
    beaten = list(learning.get("beaten") or [])
    checks = dict(learning.get("checks") or {})
    if comparison is not None:
        checks["untuned"] = comparison.record()
        if comparison.beats(higher_is_better(metric)):
            beaten.append(comparison.reference)
        else:
            evaluation.append(below_reference_reason(comparison, metric))
    return verdict(evaluation, findings, beaten, checks)


def untuned_comparison(
    metric: str, values: tuple[float, float], items: list[dict], untuned: list[dict], measure: str | None
) -> Comparison | None:
    """A cell's per-item results against the untuned cell's (`values`: the primary metric of each), when
    they are the same items."""
    if not items or [i.get("id") for i in items] != [i.get("id") for i in untuned]:
        return None
    mine = (measure, [i.get(measure) for i in items]) if measure else None
    other = (measure, [i.get(measure) for i in untuned]) if measure else None
    complete = mine is not None and other is not None and all(v is not None for v in mine[1] + other[1])
    if not complete and metric != "macro_f1":  # macro-F1 reads predictions, not item figures
        return None
    return compare(
        metric,
        "the untuned model (none)",
        values,
        [i.get("prediction") for i in items],
        [i.get("prediction") for i in untuned],
        [i.get("reference") for i in items],
        mine,
        other,
    )


def learning_columns(frame, results: list[dict]) -> dict[str, list]:
    """Per row of a `load_results` frame (same order as `results`): `learned` (None for the untuned rows,
    failed cells and results written before the checks), `learning_reasons` (codes, comma-separated) and
    `learning_detail` (their sentences), with the untuned comparison added to each cell's own checks."""
    from harness.results.items import read_items

    untuned: dict[tuple, dict] = {}
    for row in frame.to_dict("records"):
        if row["strategy_type"] == "none" and row["status"] == "ok" and row.get("items_file"):
            untuned.setdefault((row["task"], row["seed"], row.get("data_eval_sha256")), row)
    learned, codes, detail = [], [], []
    for row, result in zip(frame.to_dict("records"), results, strict=True):
        record = result.get("learning") if result.get("status") == "ok" else None
        base = untuned.get((row["task"], row["seed"], row.get("data_eval_sha256")))
        comparison = None
        if record is not None and base is not None and row.get("items_file") and row.get("search_role") != "trial":
            try:
                comparison = untuned_comparison(
                    row["primary_metric"],
                    (float(row["primary_value"]), float(base["primary_value"])),
                    read_items(row["items_file"]),
                    read_items(base["items_file"]),
                    row.get("items_measure") if row.get("items_measure") == base.get("items_measure") else None,
                )
            except (OSError, ValueError):
                comparison = None  # per-item files missing or unreadable: the cell's own checks stand
        record = with_untuned(record, comparison, row["primary_metric"])
        reasons = (record or {}).get("reasons") or []
        learned.append(None if record is None else bool(record["learned"]))
        codes.append(",".join(dict.fromkeys(r["code"] for r in reasons)) or None)
        warnings = (record or {}).get("warnings") or []
        notes = [f"{r['code']}: {r['message']}" for r in reasons] + [
            f"warning, {r['code']}: {r['message']}" for r in warnings
        ]
        detail.append(" ".join(notes) or None)
    return {"learned": learned, "learning_reasons": codes, "learning_detail": detail}
