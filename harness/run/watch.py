"""What the cell checks after each training step: budgets (tokens, seconds) and periodic evaluation
for time-to-target. Called by the loop through TrainHooks.after_step. Seconds are training-step
time, so periodic evaluation spends neither the budget nor the time to target."""

from __future__ import annotations

from collections.abc import Callable

from harness.metrics import higher_is_better
from harness.specs import TrainingSpec


class TrainingWatch:
    def __init__(
        self, training: TrainingSpec, primary: str, evaluate: Callable[[], float], step_seconds: Callable[[], float]
    ) -> None:
        self.training = training
        self.primary = primary
        self.evaluate = evaluate  # the primary metric on the evaluation set, now
        self.step_seconds = step_seconds  # training time so far, summed over steps (evaluation excluded)
        self.tokens = 0
        self.history: list[dict] = []  # periodic evaluations
        self.time_to_target: dict | None = None
        self.exhausted: str | None = None

    def _reached(self, value: float) -> bool:
        target = self.training.target
        assert target is not None  # checked only when a target is set
        return value >= target if higher_is_better(self.primary) else value <= target

    def after_step(self, step: int, batch) -> bool:
        """True when training should stop."""
        self.tokens += batch.n_tokens
        spec = self.training
        if spec.eval_every_steps and step % spec.eval_every_steps == 0:
            value = self.evaluate()
            self.history.append(
                {"step": step, "tokens": self.tokens, "train_seconds": self.step_seconds(), self.primary: value}
            )
            if spec.target is not None and self.time_to_target is None and self._reached(value):
                self.time_to_target = {
                    "step": step,
                    "tokens": self.tokens,
                    "train_seconds": self.step_seconds(),
                    "value": value,
                    "target": spec.target,
                }
                if spec.stop_at_target:
                    self.exhausted = "target reached"
                    return True
        if spec.max_tokens is not None and self.tokens >= spec.max_tokens:
            self.exhausted = f"max_tokens={spec.max_tokens}"
        elif spec.max_seconds is not None and self.step_seconds() >= spec.max_seconds:
            self.exhausted = f"max_seconds={spec.max_seconds:g}"
        return self.exhausted is not None

    def summary(self) -> dict:
        return {
            "budget_stop": self.exhausted,
            "tokens": self.tokens,
            "periodic_evaluation": self.history,
            "time_to_target": self.time_to_target,
        }
