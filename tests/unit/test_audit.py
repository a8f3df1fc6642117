"""make audit's verdict (scripts/audit.py): a known vulnerability with a fixed version fails,
unless excused with a reason; a service that does not answer is an error, never a pass."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_script", ROOT / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


audit = _load()


def report(*vulns: tuple[str, str, list[str], list[str]]) -> dict[str, object]:
    """pip-audit's ``-f json`` report: (package, id, aliases, fixed versions) per vulnerability."""
    return {
        "dependencies": [
            {
                "name": name,
                "version": "1.0",
                "vulns": [{"id": id_, "aliases": al, "fix_versions": fx}],
            }
            for name, id_, al, fx in vulns
        ]
        + [{"name": "clean", "version": "2.0", "vulns": []}]
    }


def test_a_vulnerability_with_a_fixed_version_fails_the_audit() -> None:
    found = audit.vulnerabilities(report(("urllib3", "PYSEC-1", ["CVE-1"], ["2.9.0"])))

    lines, failed = audit.verdict(found, {})

    assert failed
    assert lines == ["FAIL     urllib3 1.0: PYSEC-1 (fixed in: 2.9.0)"]


def test_one_with_no_fixed_version_is_reported_and_does_not_fail() -> None:
    found = audit.vulnerabilities(report(("babel", "GHSA-1", [], [])))

    lines, failed = audit.verdict(found, {})

    assert not failed
    assert lines == ["no fix   babel 1.0: GHSA-1 (fixed in: no fixed version yet)"]


def test_an_exception_by_any_alias_lets_it_pass_with_its_reason(tmp_path: Path) -> None:
    exceptions = tmp_path / "audit-exceptions.txt"
    exceptions.write_text("# comment\n\nCVE-1  tensorflow  pinned by rasa 3.6; op unused\n")
    found = audit.vulnerabilities(report(("tensorflow", "PYSEC-1", ["CVE-1"], ["2.13.0"])))

    lines, failed = audit.verdict(found, audit.read_exceptions(exceptions))

    assert not failed
    assert lines[0].startswith("excused  tensorflow 1.0: PYSEC-1")
    assert lines[0].endswith("tensorflow: pinned by rasa 3.6; op unused")


def test_an_exception_without_a_reason_is_refused(tmp_path: Path) -> None:
    exceptions = tmp_path / "audit-exceptions.txt"
    exceptions.write_text("CVE-1 tensorflow\n")

    with pytest.raises(ValueError, match="audit-exceptions.txt:1"):
        audit.read_exceptions(exceptions)


def test_the_shipped_exceptions_file_is_readable() -> None:
    assert audit.read_exceptions(audit.EXCEPTIONS) == {}


@pytest.fixture
def not_found() -> Iterator[str]:
    """A server that answers every look-up 404, as PyPI's JSON API does through the mirror."""

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    server.shutdown()
    server.server_close()


def test_a_service_answering_404_is_unreachable_not_clean(not_found: str) -> None:
    with pytest.raises(audit.ServiceUnreachable, match="answered HTTP 404"):
        audit.probe("osv", not_found, timeout=5)


def test_a_service_that_does_not_resolve_is_unreachable_not_clean() -> None:
    with pytest.raises(audit.ServiceUnreachable, match="no-such-host.invalid"):
        audit.probe("osv", "http://no-such-host.invalid/v1/query", timeout=5)
