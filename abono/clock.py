"""The product's one source of time.

Every time that decides behaviour (when a queued message is due, leases, link expiry,
verification windows, quiet periods, call caps, promise and installment dates, lockouts, days
past due) comes from a clock handed down from the composition root: ``build_container`` and the
CLI commands take ``system_clock`` unless a test gives them its own. This module is the only
place that reads the machine's clock; ``tests/unit/test_one_clock.py`` fails the suite when
another module does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """Now, aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)
