"""Dialogue: a single reply to a customer message, or the next turn of a multi-turn chat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.scenarios.base import SCENARIOS
from harness.scenarios.prompting import chat
from harness.scenarios.text_to_text import TextToText
from harness.schema import field


@SCENARIOS.register("dialogue")
class Dialogue(TextToText):
    name = "dialogue"
    fields = ("messages", "input", "target")

    @dataclass(frozen=True)
    class Options:
        turns: Literal["single", "multi"] = field(
            "multi",
            help="multi: rows carry `messages` ending with the assistant turn to predict; "
            "single: rows carry `input` (the user's message) and `target` (the reply)",
        )
        system: str | None = field(None, help="system message, where the chat template takes one")
        chat_template: bool = field(True, help="format with the tokenizer's chat template when it has one")

    @classmethod
    def required_fields(cls, options) -> tuple[str, ...]:
        return ("messages",) if options.turns == "multi" else ("input", "target")

    @classmethod
    def row_problems(cls, options, row: dict) -> list[tuple[str, str, str, str]]:
        turns = row.get("messages")
        if options.turns != "multi" or not isinstance(turns, list) or not turns:
            return []
        last = turns[-1] if isinstance(turns[-1], dict) else {}
        problems = []
        if last.get("role") != "assistant":
            problems.append(
                (
                    "messages",
                    "last_turn_not_assistant",
                    f"the conversation ends with a {last.get('role', 'malformed')!r} turn, not the assistant's",
                    "end each conversation with the assistant reply to learn (the conversation transform does)",
                )
            )
        if any(isinstance(t, dict) and not str(t.get("content", "")).strip() for t in turns):
            problems.append(("messages", "empty_text", "a turn has empty content", "drop or fill the empty turn"))
        return problems

    @classmethod
    def input_key(cls, options, row: dict) -> str:
        if options.turns == "single":
            return str(row.get("input", ""))
        turns = row.get("messages") or []
        return "\n".join(str(t.get("content", "")) for t in turns[:-1] if isinstance(t, dict))

    def __init__(self, task, tokenizer, kind, train_rows, eval_rows) -> None:
        super().__init__(task, tokenizer, kind, train_rows, eval_rows)
        if self.options.turns == "multi":
            for split, rows in (("train", train_rows), ("eval", eval_rows)):
                for i, row in enumerate(rows):
                    turns = row["messages"]
                    well_formed = (
                        isinstance(turns, list)
                        and len(turns) >= 2
                        and all(isinstance(t, dict) and {"role", "content"} <= set(t) for t in turns)
                    )
                    if not well_formed or turns[-1]["role"] != "assistant":
                        raise ValueError(
                            f"{task.path}: {split} row {i + 1}: field messages must be a list of "
                            f"{{role, content}} turns ending with an assistant turn"
                        )

    def messages(self, row: dict) -> list[dict[str, str]]:
        if self.options.turns == "single":
            return chat(self.options.system, [("user", row["input"])])
        return chat(self.options.system, [(t["role"], t["content"]) for t in row["messages"][:-1]])

    def target(self, row: dict) -> str:
        return str(row["target"]) if self.options.turns == "single" else str(row["messages"][-1]["content"])
