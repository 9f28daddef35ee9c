"""The one test for a missing value: None, or a float NaN (what pandas and JSON null become)."""

from __future__ import annotations

import math


def missing(value) -> bool:
    """None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))
