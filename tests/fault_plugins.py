"""Strategies that fail on purpose, loaded through a suite's `plugins` key."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from harness.strategies import STRATEGIES, Applied, Strategy


@dataclass(frozen=True)
class _NoOptions:
    pass


@STRATEGIES.register("fault-raise")
class Raises(Strategy):
    name, Options = "fault-raise", _NoOptions

    def apply(self, model, context) -> Applied:
        raise RuntimeError("injected failure in apply")


@STRATEGIES.register("fault-kill")
class KillsItself(Strategy):
    name, Options = "fault-kill", _NoOptions

    def apply(self, model, context) -> Applied:
        os.kill(os.getpid(), signal.SIGKILL)


@STRATEGIES.register("fault-hog")
class HogsMemory(Strategy):
    """Grows the resident set without bound, like a run-away activation buffer."""

    name, Options = "fault-hog", _NoOptions

    def apply(self, model, context) -> Applied:
        hoard = []
        while True:
            hoard.append(bytearray(64 * 2**20))
            hoard[-1][::4096] = b"\x01" * len(hoard[-1][::4096])  # touch every page


@STRATEGIES.register("slow-steps")
class SlowSteps(Strategy):
    """Full fine-tuning whose every training forward pass sleeps 0.3 s: long enough to watch a cell's steps."""

    name, Options = "slow-steps", _NoOptions
    defaults = {"learning_rate": 1e-4}

    def apply(self, model, context) -> Applied:
        import time

        model.register_forward_pre_hook(lambda module, args: time.sleep(0.3) if module.training else None)
        return Applied(model, trainable={name for name, _ in model.named_parameters()})
