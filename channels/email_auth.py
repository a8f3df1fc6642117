"""Is an inbound mail from whom its From line says? SendGrid's SPF and DKIM verdicts, aligned.

Inbound Parse posts the receiving server's verdicts beside the mail: ``SPF`` (``pass``,
``fail``, ``softfail``, ``neutral``, ``none``, ...) for the envelope sender's domain, and
``dkim`` (``{@example.com : pass}``, one ``@domain : result`` per signature). A pass alone
proves nothing about the customer: anyone can send with SPF and DKIM passing for a domain of
their own while the From line names someone else. What counts is an *aligned* pass, as DMARC
defines it: SPF passed for an envelope sender whose domain is the From domain's, or a DKIM
signature passed for the From domain's.

Alignment is relaxed (a subdomain counts: ``bounces.example.com`` for ``example.com``, and the
other way round), but only along one line of the DNS tree: whoever controls a domain controls
its subdomains, so a parent or a child of the From domain is the same owner, with no public
suffix list needed. Sibling subdomains (``a.example.com`` signing for ``b.example.com``), which
DMARC's organizational domain would also accept, do not count here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

from abono.accounts.customers import normalize_email

_DKIM_RESULT = re.compile(r"@?([a-z0-9._-]+\.[a-z0-9-]+\.?)\s*:\s*([a-z]+)", re.I)


@dataclass(frozen=True)
class SenderCheck:
    """The verdict on one mail: the From address it may act as, or why it may not."""

    address: str | None  # the From address, set only when its domain passed aligned
    reason: str  # spf_aligned | dkim_aligned | no_from | no_pass | not_aligned

    @property
    def authenticated(self) -> bool:
        return self.address is not None


def check_sender(
    from_header: str | None, envelope_from: str | None, spf: str | None, dkim: str | None
) -> SenderCheck:
    """The From address, when SPF (for the envelope sender) or DKIM passed aligned with it."""
    address = from_address(from_header)
    if address is None:
        return SenderCheck(None, "no_from")
    from_domain = _domain(address)
    envelope = normalize_email(envelope_from or "")
    spf_passed = (spf or "").strip().lower() == "pass" and envelope is not None
    signed = dkim_passes(dkim)
    if spf_passed and aligned(_domain(envelope or ""), from_domain):
        return SenderCheck(address, "spf_aligned")
    if any(aligned(domain, from_domain) for domain in signed):
        return SenderCheck(address, "dkim_aligned")
    return SenderCheck(None, "not_aligned" if spf_passed or signed else "no_pass")


def from_address(header: str | None) -> str | None:
    """The one mailbox of a From line; None for none, several, or one that is no address."""
    found = [email for _, email in getaddresses([header or ""]) if email]
    if len(found) != 1:
        return None
    return normalize_email(found[0])


def dkim_passes(field: str | None) -> list[str]:
    """The domains whose DKIM signature passed, from SendGrid's ``{@domain : result, ...}``."""
    return [
        _canonical(domain)
        for domain, result in _DKIM_RESULT.findall(field or "")
        if result.lower() == "pass"
    ]


def aligned(domain: str, from_domain: str) -> bool:
    """The same domain, or one inside the other (a subdomain has the same owner)."""
    a, b = _canonical(domain), _canonical(from_domain)
    if "." not in a or "." not in b:  # a top-level domain signs for nobody
        return False
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def _canonical(domain: str) -> str:
    """Lower case, no trailing dot, international names in their ASCII form (as DKIM's d=)."""
    name = domain.strip().strip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
