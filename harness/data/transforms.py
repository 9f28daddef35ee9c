"""Row transforms, registered by name: what turns a published file into a task's rows.

A task lists them under `[[data.transforms]]` (`name = "..."` plus the transform's options);
they run in order on every row of the source file, before the split and the field mapping.
Each transform is a function `(rows, options) -> rows` with a frozen Options dataclass, so
its keys are checked like every other table. Plugins register their own with
`@TRANSFORMS.register("name")`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.registry import Registry
from harness.schema import field

Row = dict[str, Any]


@dataclass(frozen=True)
class Transform:
    """A registered transform: its options and the function that applies them."""

    Options: type
    apply: Callable[[list[Row], Any], list[Row]]


TRANSFORMS: Registry[Transform] = Registry("data transform")


def register(name: str, options: type):
    def decorator(function):
        TRANSFORMS.register(name)(Transform(options, function))
        return function

    return decorator


def get_path(row: Any, path: str) -> Any:
    """A nested value: `input.1.content` is row["input"][1]["content"]; -1 counts from the end.
    A column whose name itself contains dots wins. KeyError when absent."""
    if isinstance(row, dict) and path in row:
        return row[path]
    value = row
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and re.fullmatch(r"-?\d+", part) and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(path)
    return value


def _number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{where}: expected a number, got NaN")
    return number


# ---------------------------------------------------------------- built-in transforms


@dataclass(frozen=True)
class ThresholdOptions:
    column: str = field(help="numeric column, e.g. a rating")
    to: str = field("label", help="column written with the label")
    at: float = field(0.0, help="values above are `above`, below are `below`")
    margin: float = field(0.0, min=0.0, help="rows within this distance of `at` are dropped (neutral)")
    below: str = field("negative", help="label for values below at - margin")
    above: str = field("positive", help="label for values above at + margin")


@register("threshold", ThresholdOptions)
def threshold(rows: list[Row], options: ThresholdOptions) -> list[Row]:
    """A two-class label from a numeric score, dropping the band around the threshold."""
    out = []
    for number, row in enumerate(rows, start=1):
        value = _number(get_path(row, options.column), f"row {number}: column {options.column!r}")
        if abs(value - options.at) > options.margin:
            out.append({**row, options.to: options.above if value > options.at else options.below})
    return out


@dataclass(frozen=True)
class KeepOptions:
    column: str = field(help="column to filter on")
    values: tuple[str, ...] = field(help="rows whose value (as text) is one of these are kept; the rest dropped")


@register("keep", KeepOptions)
def keep(rows: list[Row], options: KeepOptions) -> list[Row]:
    """Only rows with one of the listed values, e.g. the most frequent classes of a long-tailed label."""
    wanted = set(options.values)
    return [row for row in rows if str(get_path(row, options.column)) in wanted]


@dataclass(frozen=True)
class RelabelOptions:
    column: str = field(help="column whose values are renamed")
    values: dict[str, str] = field(help="old value (as text) -> new value; other values are an error")


@register("relabel", RelabelOptions)
def relabel(rows: list[Row], options: RelabelOptions) -> list[Row]:
    """Readable label names, e.g. 0/1 -> ham/spam."""
    out = []
    for number, row in enumerate(rows, start=1):
        value = str(get_path(row, options.column))
        if value not in options.values:
            raise ValueError(
                f"row {number}: column {options.column!r}: value {value!r} is not in values "
                f"({', '.join(options.values)})"
            )
        out.append({**row, options.column: options.values[value]})
    return out


@dataclass(frozen=True)
class CleanTextOptions:
    column: str = field(help="text column to clean")
    unescape_html: bool = field(True, help="turn HTML entities such as &#039; into characters")
    strip: str = field("", help="characters stripped from both ends (after whitespace), e.g. '\"'")


@register("clean_text", CleanTextOptions)
def clean_text(rows: list[Row], options: CleanTextOptions) -> list[Row]:
    """Text as a reader sees it: entities decoded, wrapping quotes and whitespace removed."""
    import html

    out = []
    for row in rows:
        text = str(get_path(row, options.column))
        text = html.unescape(text) if options.unescape_html else text
        out.append({**row, options.column: text.strip().strip(options.strip).strip()})
    return out


@dataclass(frozen=True)
class DropDuplicatesOptions:
    column: str = field(help="rows repeating an earlier row's value here are dropped")


@register("drop_duplicates", DropDuplicatesOptions)
def drop_duplicates(rows: list[Row], options: DropDuplicatesOptions) -> list[Row]:
    """The first row of each value, so that a text cannot sit in both train and eval."""
    seen: set[str] = set()
    out = []
    for row in rows:
        key = str(get_path(row, options.column)).strip().lower()
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


@dataclass(frozen=True)
class MultipleChoiceOptions:
    column: str = field(help="text holding the question and its lettered options (A) ... or A. ...)")
    answer: str = field(help="column holding the answer letter, e.g. 'B', 'c) ...' or 'The final answer is: B'")
    stem_until: str | None = field(None, help="the question ends before this text (e.g. an instruction line)")
    letters: str = field("ABCDE", help="option letters, in order")


_ANSWER = re.compile(r"(?:answer is:?\s*|^\s*\(?)([A-Za-z])(?:\)|\.|\s|$)")


@register("multiple_choice", MultipleChoiceOptions)
def multiple_choice(rows: list[Row], options: MultipleChoiceOptions) -> list[Row]:
    """Adds `question` (the stem), `choices` (option texts) and `answer_text` (the correct option)."""
    out = []
    for number, row in enumerate(rows, start=1):
        where = f"row {number}: column {options.column!r}"
        text = str(get_path(row, options.column))
        choices, start = _lettered_options(text, options.letters)
        if len(choices) < 2:
            raise ValueError(
                f"{where}: found no lettered options ({options.letters[0]}) ... {options.letters[1]}) ...)"
            )
        answer = get_path(row, options.answer)
        answer = str(answer[0] if isinstance(answer, list) and answer else answer).strip()
        match = _ANSWER.search(answer)
        letter = match.group(1).upper() if match else ""
        if letter not in options.letters[: len(choices)]:
            raise ValueError(
                f"row {number}: column {options.answer!r}: no answer letter among "
                f"{options.letters[: len(choices)]} in {answer[:40]!r}"
            )
        stem = text[:start]
        if options.stem_until and options.stem_until in stem:
            stem = stem[: stem.index(options.stem_until)]
        out.append(
            {
                **row,
                "question": stem.strip(),
                "choices": choices,
                "answer_text": choices[options.letters.index(letter)],
                "answer_letter": letter,
            }
        )
    return out


def _lettered_options(text: str, letters: str) -> tuple[list[str], int]:
    """The option texts of the last complete A, B, C... run in `text`, and where the run starts.
    An option ends at the next option or at the end of its line."""
    markers = [
        (m.group(1), m.start(1), m.end())
        for m in re.finditer(rf"(?:^|(?<=\s))([{letters}{letters.lower()}])[\).]\s", text)
    ]
    for i in range(len(markers) - 1, -1, -1):
        if markers[i][0].upper() != letters[0]:
            continue
        run = [markers[i]]
        for marker in markers[i + 1 :]:
            if len(run) < len(letters) and marker[0].upper() == letters[len(run)]:
                run.append(marker)
        if len(run) >= 2:
            texts = []
            for k, (_, _, end) in enumerate(run):
                stop = run[k + 1][1] if k + 1 < len(run) else len(text)
                texts.append(text[end:stop].split("\n")[0].strip())
            return texts, run[0][1]
    return [], len(text)


@dataclass(frozen=True)
class ConversationOptions:
    column: str = field("messages", help="list of turns; a turn is a message or a list of one speaker's messages")
    text: str = field("text", help="key of a message's text")
    to: str = field("messages", help="column written with [{role, content}, ...]")
    max_turns: int = field(6, min=2, help="keep at most this many turns from the start")
    joiner: str = field(" ", help="joins consecutive messages of one speaker into one turn")


@register("conversation", ConversationOptions)
def conversation(rows: list[Row], options: ConversationOptions) -> list[Row]:
    """Alternating user/assistant turns that end on an assistant turn (the reply to predict);
    conversations with fewer than two turns are dropped."""
    out = []
    for number, row in enumerate(rows, start=1):
        turns = get_path(row, options.column)
        if not isinstance(turns, list):
            raise ValueError(f"row {number}: column {options.column!r}: expected a list of turns")
        texts = []
        for turn in turns:
            messages = turn if isinstance(turn, list) else [turn]
            parts = [str(m.get(options.text, "")) if isinstance(m, dict) else str(m) for m in messages]
            if content := options.joiner.join(p.strip() for p in parts if p.strip()):
                texts.append(content)
        keep = min(len(texts), options.max_turns) // 2 * 2
        if keep >= 2:
            out.append(
                {
                    **row,
                    options.to: [
                        {"role": "user" if i % 2 == 0 else "assistant", "content": t}
                        for i, t in enumerate(texts[:keep])
                    ],
                }
            )
    return out


def transform_options(spec, key: str, out) -> tuple[Transform, Any] | None:
    """The transform a `[[data.transforms]]` entry names and its built options; problems go to `out`
    (a harness.schema.Collector), keys under `key`."""
    from harness.schema import build

    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        out.add(key, f"expected a table ([[data.transforms]]), got {type(spec).__name__}")
    elif not isinstance(name, str):
        out.add(f"{key}.name", f"is required: one of {', '.join(TRANSFORMS.names())}")
    elif name not in TRANSFORMS:
        try:
            TRANSFORMS.get(name)
        except KeyError as exc:
            out.add(f"{key}.name", str(exc))
    else:
        transform = TRANSFORMS.get(name)
        options = build(transform.Options, {k: v for k, v in spec.items() if k != "name"}, key, out)
        return (transform, options) if options is not None else None
    return None


def apply_transforms(rows: list[Row], specs: tuple, where: str, dropped: list[dict] | None = None) -> list[Row]:
    """Run each `[[data.transforms]]` entry on the rows; errors name the file and the transform. Where a
    transform leaves fewer rows, `dropped` (when given) gets what it dropped and why."""
    from harness.schema import Collector

    for index, spec in enumerate(specs):
        out = Collector(where)
        built = transform_options(dict(spec), f"data.transforms[{index}]", out)
        if built is None:
            raise ValueError("; ".join(str(p) for p in out.problems))
        transform, options = built
        before = len(rows)
        try:
            rows = transform.apply(rows, options)
        except KeyError as exc:
            raise ValueError(f"{where}: data.transforms[{index}]: no column {exc.args[0]!r} in the data") from None
        except ValueError as exc:
            raise ValueError(f"{where}: data.transforms[{index}]: {exc}") from None
        if dropped is not None and len(rows) < before:
            why = " ".join((transform.apply.__doc__ or "").split()).split(". ")[0].rstrip(".")  # its first sentence
            name = f"data.transforms[{index}] ({spec['name']})"
            dropped.append({"where": where, "transform": name, "rows": before - len(rows), "of": before, "why": why})
    return rows
