"""Scenarios, registered by name: data -> model head -> batches -> predictions -> metric inputs."""

from harness.scenarios import classification, dialogue, generation, question_answering  # noqa: F401  (registration)
from harness.scenarios.base import SCENARIOS, Batch, Evaluation, Scenario, new_head_modules  # noqa: F401
