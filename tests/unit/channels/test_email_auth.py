"""Whether an inbound mail may act as its From address: SPF and DKIM verdicts, aligned."""

from __future__ import annotations

import pytest

from channels.email_auth import check_sender, dkim_passes, from_address

JAMES = "james.carter@example.com"


@pytest.mark.parametrize(
    ("envelope", "spf", "dkim", "reason"),
    [
        (JAMES, "pass", "none", "spf_aligned"),
        ("bounces@mail.example.com", "pass", "", "spf_aligned"),  # a subdomain of From's
        ("bounces+7@esp.example.net", "pass", "{@example.com : pass}", "dkim_aligned"),
        (
            "bounces+7@esp.example.net",
            "none",
            "{@esp.example.net : pass, @example.com : pass}",
            "dkim_aligned",
        ),
        (JAMES, "softfail", "{@mail.example.com : pass}", "dkim_aligned"),
        (JAMES, "fail", "none", "no_pass"),
        (JAMES, "", "", "no_pass"),
        (JAMES, "neutral", "{@example.com : fail (body has been altered)}", "no_pass"),
        ("mailer@forger.example", "pass", "{@forger.example : pass}", "not_aligned"),
        ("james@notexample.com", "pass", "{@notexample.com : pass}", "not_aligned"),
        ("mailer@forger.example", "pass", "{@com : pass}", "not_aligned"),  # no one signs as a TLD
    ],
)
def test_only_a_pass_aligned_with_the_from_domain_authenticates(
    envelope: str, spf: str, dkim: str, reason: str
) -> None:
    check = check_sender(f"James Carter <{JAMES}>", envelope, spf, dkim)
    assert check.reason == reason
    assert check.authenticated is (reason in ("spf_aligned", "dkim_aligned"))
    assert check.address == (JAMES if check.authenticated else None)


def test_a_parent_domain_of_the_from_domain_aligns() -> None:
    check = check_sender(
        "ana@mx.correo.example.es", "x@mx.correo.example.es", "none", "{@correo.example.es : pass}"
    )
    assert check.address == "ana@mx.correo.example.es"


@pytest.mark.parametrize(
    "header",
    ["", "undisclosed-recipients:;", "a@example.com, b@example.com", "not an address"],
)
def test_a_from_line_without_exactly_one_address_authenticates_nothing(header: str) -> None:
    assert from_address(header) is None
    assert check_sender(header, JAMES, "pass", "{@example.com : pass}").reason == "no_from"


def test_the_from_address_is_read_from_the_header_and_normalized() -> None:
    assert from_address('"Carter, James" <James.Carter@Example.com>') == JAMES
    assert dkim_passes("{@Example.COM. : pass, @other.example : neutral}") == ["example.com"]
