"""Prompt options shared by the text-to-text scenarios: how a row becomes the user's message."""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from harness.schema import field


@dataclass(frozen=True)
class PromptOptions:
    instruction: str = field("", help="text put before the input, e.g. 'Summarise the article in one sentence.'")
    template: str = field("{input}", help="the user's message; {field} placeholders name canonical row fields")
    system: str | None = field(None, help="system message, where the chat template takes one")
    chat_template: bool = field(True, help="format with the tokenizer's chat template when it has one (causal LMs)")


def template_problems(template: str, fields: tuple[str, ...]) -> list[tuple[str, str]]:
    """Placeholders in `template` that are not readable fields."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return [("template", f"not a valid template: {exc}")]
    unknown = [n for n in names if n not in fields]
    return [("template", f"unknown placeholder {{{n}}}; rows have: {', '.join(fields)}") for n in unknown]


def chat(system: str | None, turns: Iterable[tuple[str, object]]) -> list[dict[str, str]]:
    """The conversation a model answers, built in this one place: the system message (if any), then
    the (role, content) turns."""
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": role, "content": str(content)} for role, content in turns]


class Prompting(Protocol):
    """What `user_messages` reads of a scenario's options (PromptOptions, QAOptions)."""

    template: str
    instruction: str
    system: str | None


def user_messages(options: Prompting, row: dict) -> list[dict[str, str]]:
    """System message (if any) and the user's message for one row: the template filled from the row,
    after the instruction."""
    content = options.template.format(**row)
    if options.instruction:
        content = f"{options.instruction}\n\n{content}"
    return chat(options.system, [("user", content)])
