"""Trackers: context managers that measure a phase without touching the code they wrap. Importing the
package registers the built-in ones; the first registered is entered outermost."""

from harness.measure import contention, cost, memory, startup, throughput, timing  # noqa: F401  (registration)
from harness.measure.tracker import TRACKERS, Tracker, TrackerContext, phase, register_tracker  # noqa: F401
