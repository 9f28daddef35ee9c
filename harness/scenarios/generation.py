"""Text generation (summarisation, creative writing) and domain-specific tasks: input -> target text."""

from __future__ import annotations

from harness.scenarios.base import SCENARIOS
from harness.scenarios.prompting import PromptOptions, template_problems, user_messages
from harness.scenarios.text_to_text import TextToText


@SCENARIOS.register("generation")
class Generation(TextToText):
    name = "generation"
    fields = ("input", "target")
    Options = PromptOptions

    @classmethod
    def check_options(cls, options: PromptOptions) -> list[tuple[str, str]]:
        return template_problems(options.template, cls.fields)

    def messages(self, row: dict) -> list[dict[str, str]]:
        return user_messages(self.options, row)

    def target(self, row: dict) -> str:
        return str(row["target"])


@SCENARIOS.register("domain")
class DomainGeneration(Generation):
    """Generation on a specialised domain (medical, legal, ...): the task file names it in task.domain."""

    name = "domain"
    needs_domain = True
