"""Nothing the integration suite did left a card number in a log or a table, or a phone number
or an email address in a log (issue 14): the product's processes log at INFO, as in production,
and every customer in the suite gives their number, address and, sometimes, a card number.

Runs last (tests/integration/conftest.py) over what every integration test before it wrote:
its processes' logs, its SQLite files (the app's store, the engine's trackers) and, scanned when
each test was done with it, its PostgreSQL databases.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import Written
from tests.leaks import log_files, report, scan, sqlite_files


def test_no_log_line_or_table_the_suite_wrote_holds_personal_data(suite_wrote: Written) -> None:
    if suite_wrote.tests == 0:
        pytest.skip("no integration test ran before this one: nothing to scan")
    directories = sorted(suite_wrote.directories)
    logs = [path for directory in directories for path in log_files(directory)]
    databases = [f"sqlite:///{path}" for d in directories for path in sqlite_files(d)]

    findings = suite_wrote.findings + scan(logs, databases)

    print(
        f"leak scan: {len(logs)} log files, {len(databases)} SQLite and "
        f"{len(suite_wrote.postgres)} PostgreSQL databases from {suite_wrote.tests} tests"
    )
    assert findings == [], report(findings)
