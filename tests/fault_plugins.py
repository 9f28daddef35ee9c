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
