"""What the integration tests wrote, for the leak scan that runs after them (test_nothing_leaks).

Every integration test writes its processes' logs and its SQLite databases under pytest's base
temporary directory: whatever appears there while an integration test runs, its fixtures'
setup and teardown included, is the suite's (the unit tests' directories are not, and they
plant card numbers on purpose). A PostgreSQL database is gone once a test is done with it, so
each is scanned then (``tests.support.DONE_WITH_DATABASE``) and its findings kept. The scan
test is moved to the end of the session so that it reads what every other test left.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import support
from tests.leaks import Finding, scan_database

HERE = Path(__file__).resolve().parent
LEAK_TEST = "test_nothing_leaks.py::test_no_log_line_or_table_the_suite_wrote_holds_personal_data"


@dataclass
class Written:
    """The directories and PostgreSQL findings of the integration tests run so far."""

    directories: set[Path] = field(default_factory=set)
    postgres: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tests: int = 0

    def scan_postgres(self, url: str) -> None:
        self.postgres.append(url)
        try:
            self.findings += scan_database(url)
        except Exception as error:  # a database nobody can read is not proven clean
            self.findings.append(Finding("unscanned database", url, type(error).__name__))


WRITTEN = pytest.StashKey[Written]()


def pytest_configure(config: pytest.Config) -> None:
    written = config.stash[WRITTEN] = Written()
    support.DONE_WITH_DATABASE.append(written.scan_postgres)


def pytest_unconfigure(config: pytest.Config) -> None:
    if WRITTEN in config.stash:
        support.DONE_WITH_DATABASE.remove(config.stash[WRITTEN].scan_postgres)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.nodeid.endswith(LEAK_TEST)]
    items[:] = [item for item in items if item not in last] + last


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    if HERE not in item.path.parents:  # the hook sees every test of the session
        return (yield)
    # pytest's own factory (pytest sets it on the config); the tmp_path fixtures all use it.
    basetemp: Path = item.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    before = set(basetemp.iterdir())
    try:
        return (yield)
    finally:
        written = item.config.stash[WRITTEN]
        # Not the ``<name>current`` links pytest adds next to each test's numbered directory.
        made = set(basetemp.iterdir()) - before
        written.directories |= {path for path in made if not path.is_symlink()}
        if not item.nodeid.endswith(LEAK_TEST):
            written.tests += 1


@pytest.fixture
def suite_wrote(request: pytest.FixtureRequest) -> Iterator[Written]:
    yield request.config.stash[WRITTEN]
