"""No account the policies cannot serve: the import refuses it, and so does the start-up.

A row whose segment has no plan limits, whose currency the payment links do not charge in, or
whose customer is in a country the contact rules do not cover is refused with the reason
(like any other row error); a start over a store that already holds a segment the plan policy
lost is refused with a clear message, before anything serves.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.csv_import import import_accounts
from abono.app import build_container, served_by_policies
from abono.cli.main import main
from abono.errors import UnservedAccountsError
from abono.settings import Settings
from tests.fakes import FakeEngine
from tests.unit.accounts.test_accounts_import import counts, csv_lines, row
from tests.unit.accounts.test_accounts_import import db as db  # noqa: F401  # fixture
from tests.unit.accounts.test_accounts_import import engine as engine  # noqa: F401  # fixture
from tests.unit.conftest import Clock

REFUSED = [
    ("segment", {"segment": "enterprise"}, "segment: 'enterprise' has no plan limits"),
    ("currency", {"currency": "EUR"}, "currency: EUR is not served"),
    ("phone abroad", {"phone": "+44 20 7946 0958"}, "phone: a number in GB"),
]


@pytest.mark.parametrize(
    ("cells", "reason"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_a_row_the_policies_cannot_serve_is_refused_with_the_reason(
    db: sessionmaker[Session], cells: dict[str, str], reason: str
) -> None:
    report = import_accounts(db, csv_lines(row(**cells)), served=served_by_policies())

    assert report.imported == 0
    (refused,) = report.rejected
    assert refused.line == 2 and refused.customer_id == "T-1"
    assert any(r.startswith(reason) for r in refused.reasons), refused.reasons
    assert "policies allow" in " ".join(refused.reasons)  # says what would be accepted
    assert counts(db) == (0, 0, 0)  # nothing of the row is written


def test_a_country_column_is_checked_too(db: sessionmaker[Session]) -> None:
    header, line = csv_lines(row())
    lines = [header.rstrip("\n") + ",country\n", line.rstrip("\n") + ",MX\n"]
    report = import_accounts(db, lines, served=served_by_policies())
    assert report.rejected[0].reasons == ["country: MX is not served (policies allow PR, US)"]


def other(n: int) -> dict[str, str]:
    """Another customer's own identifiers and addresses."""
    return {
        "customer_id": f"T-{n}",
        "account_number": f"T-ACC-{n}",
        "phone": f"(415) 555-01{90 + n}",
        "email": f"test{n}@example.com",
    }


def test_the_rows_the_policies_serve_go_in_beside_the_refused_ones(
    db: sessionmaker[Session],
) -> None:
    lines = csv_lines(
        row(),
        row(**other(2), segment="small_business"),
        row(**{**other(3), "phone": "(787) 555-0106"}),  # Puerto Rico
        row(**other(4), segment="enterprise"),
    )
    report = import_accounts(db, lines, served=served_by_policies())
    assert (report.imported, [r.customer_id for r in report.rejected]) == (3, ["T-4"])


def test_the_operators_import_command_refuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("ABONO_DATABASE_URL", f"sqlite:///{tmp_path / 'abono.db'}")
    monkeypatch.setenv("ABONO_SANDBOX", "true")
    path = tmp_path / "accounts.csv"
    path.write_text("".join(csv_lines(row(segment="enterprise"))), encoding="utf-8")

    assert main(["accounts", "import", str(path)]) == 1
    assert "segment: 'enterprise' has no plan limits" in capsys.readouterr().out


# -- start-up ----------------------------------------------------------------------------------


@pytest.fixture
def enterprise_store(demo_database_url: str, tmp_path: Path) -> str:
    """The demo store with one account imported as enterprise before the import refused it."""
    path = tmp_path / "enterprise.db"
    shutil.copyfile(demo_database_url.removeprefix("sqlite:///"), path)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE accounts SET segment = 'enterprise' WHERE id = (SELECT MIN(id) FROM accounts)"
        )
    return f"sqlite:///{path}"


def test_building_the_app_over_a_segment_without_limits_is_refused(
    enterprise_store: str, clock: Clock
) -> None:
    settings = Settings(database_url=enterprise_store)
    with pytest.raises(UnservedAccountsError) as refused:
        build_container(settings, engine=FakeEngine(), clock=clock)
    assert "segment 'enterprise': 1 account(s)" in refused.value.message
    assert "policies/payment_plans.yml" in refused.value.message


def test_serve_says_why_it_will_not_start_without_a_traceback(
    enterprise_store: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("ABONO_DATABASE_URL", enterprise_store)
    monkeypatch.setenv("ABONO_SANDBOX", "true")

    assert main(["serve"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: refusing to start: the policy files cannot serve")
    assert "segment 'enterprise'" in error
    assert "Traceback" not in error


def test_serve_names_a_policy_field_that_cannot_be_enforced(
    demo_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import abono.app

    real = abono.app.load_policy_file

    def broken(name: str) -> Any:
        data = real(name)
        if name == "payments.yml":
            data["currencies"] = ["dollars"]
        return data

    monkeypatch.setattr(abono.app, "load_policy_file", broken)
    monkeypatch.setenv("ABONO_DATABASE_URL", demo_database_url)
    monkeypatch.setenv("ABONO_SANDBOX", "true")
    assert main(["serve"]) == 2
    assert "payments.currencies" in capsys.readouterr().err
