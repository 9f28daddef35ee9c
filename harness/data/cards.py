"""Each task's data read, checked and carded as its cells will see it: what `validate`, `run` (before
any cell), `list --data` and `init` report (the checks themselves: harness.data.checks)."""

from __future__ import annotations

from harness.data import data_card, load_task_data
from harness.data.checks import with_tokens
from harness.models import load_tokenizer, local_source, model_kind
from harness.scenarios import SCENARIOS


def check_tasks(matrix, tokens: bool = False) -> tuple[list[str], dict[str, list[str]], dict[str, dict]]:
    """Each task's data read and prepared as its cells will (cached for them), and checked
    (harness.data.checks): one line per problem; per task what its training rows decide (e.g. the class
    weighting) and the data check's warnings; per task its data card (with `tokens`, the token lengths
    under the task's tokenizer, which loads it)."""
    problems, notes, cards, seen = [], {}, {}, set()
    for cell in matrix.cells:
        if cell.task.path in seen or cell.task.data.train is None:  # hub data needs the network
            continue
        seen.add(cell.task.path)
        scenario = SCENARIOS.get(cell.task.task.scenario)
        try:
            data = load_task_data(cell.task, scenario.required_fields(cell.task.scenario), scenario.fields)
            card = data_card(cell.task, scenario)
        except ValueError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        if card is not None:
            problems.extend(finding.line() for finding in card.errors)
            if tokens and not card.errors:
                card = _with_token_lengths(cell.task, scenario, card, data)
            cards[cell.task.name] = card.record()
        notes[cell.task.name] = scenario.data_notes(cell.task.scenario, data.train) + [
            f"data check: {warning}" for warning in (card.warnings if card else [])
        ]
    return problems, notes, cards


def token_lengths(task, scenario, data) -> tuple[list[int], str, str]:
    """The untruncated token lengths of the task's rows (train, then eval) under its model's tokenizer, what
    happens to a row longer than max_length, and the model folder or id they were measured with."""
    source = local_source(task.model, task.path.parent)
    tokenizer = load_tokenizer(source, task.model.revision, task.model.trust_remote_code)
    kind = model_kind(source, task.model.kind, task.model.revision, task.model.trust_remote_code)
    instance = scenario.create(task, tokenizer, kind, data.train, data.eval)
    return instance.full_lengths(data.train + data.eval), instance.over_length, source


def _with_token_lengths(task, scenario, card, data):
    """The card with the token lengths of the task's rows under its model's tokenizer."""
    lengths, over, _ = token_lengths(task, scenario, data)
    return with_tokens(card, lengths, task.model.max_length, over)
