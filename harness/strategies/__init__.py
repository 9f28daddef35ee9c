"""Tuning strategies, registered by name. Each decides what trains and what is inserted;
`freeze_all_but` does the freezing for all of them."""

from harness.strategies import adapter, baseline, frozen_lower, full, lora, peft_method  # noqa: F401  (registration)
from harness.strategies.base import STRATEGIES, Applied, ModelContext, Strategy, freeze_all_but, is_head_param  # noqa: F401
