"""The dependency audit (make audit): pip-audit on both lock files, failing on a known
vulnerability that has a fixed version, unless requirements/audit-exceptions.txt excuses it.

Run by scripts/audit.sh with .venv-audit's Python; it imports nothing from the project. A
vulnerability service that cannot be reached is an error, never a pass: pip-audit's PyPI
service reports each package it cannot look up as skipped and exits 0, so the service is
tried first and pip-audit runs with ``--strict``. docs/dependencies.md has the why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCKS = (ROOT / "requirements" / "app.lock", ROOT / "requirements" / "engine.lock")
EXCEPTIONS = ROOT / "requirements" / "audit-exceptions.txt"
OSV_URL = "https://api.osv.dev/v1/query"
PYPI_PROBE = "https://pypi.org/pypi/pip/24.0/json"  # pip-audit's PyPI service asks this API
Report = dict[str, Any]  # pip-audit's JSON, as json.loads gives it
UNREACHABLE = 2  # the audit could not run: not a pass, not a vulnerability either


class ServiceUnreachable(Exception):
    """The vulnerability service did not answer as one: nothing was audited."""


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]

    def names(self) -> set[str]:
        return {self.id, *self.aliases}

    def __str__(self) -> str:
        fix = ", ".join(self.fixed_in) or "no fixed version yet"
        return f"{self.package} {self.version}: {self.id} (fixed in: {fix})"


def read_exceptions(path: Path) -> dict[str, str]:
    """``<vulnerability id> <package> <reason>`` per line; a line without a reason is refused."""
    excused: dict[str, str] = {}
    if not path.exists():
        return excused
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise ValueError(f"{path.name}:{number}: want '<id> <package> <reason>', got {line!r}")
        excused[parts[0]] = f"{parts[1]}: {parts[2]}"
    return excused


def vulnerabilities(report: Report) -> list[Vulnerability]:
    """pip-audit's JSON report (``-f json``) as one entry per known vulnerability."""
    found = []
    for dependency in report.get("dependencies", []):
        for vuln in dependency.get("vulns", []):
            found.append(
                Vulnerability(
                    dependency["name"],
                    dependency.get("version", "?"),
                    vuln["id"],
                    tuple(vuln.get("aliases", [])),
                    tuple(vuln.get("fix_versions", [])),
                )
            )
    return found


def verdict(found: list[Vulnerability], excused: dict[str, str]) -> tuple[list[str], bool]:
    """The lines to print, and whether the audit fails: a vulnerability with a fixed version
    fails it unless excused; one with no fix yet is reported but cannot be acted on."""
    lines, failed = [], False
    for vuln in found:
        reason = next((excused[name] for name in sorted(vuln.names()) if name in excused), None)
        if reason is not None:
            lines.append(f"excused  {vuln}: {reason}")
        elif vuln.fixed_in:
            lines.append(f"FAIL     {vuln}")
            failed = True
        else:
            lines.append(f"no fix   {vuln}")
    return lines, failed


def probe(service: str, osv_url: str, timeout: float = 15) -> None:
    """One look-up as pip-audit makes it; ServiceUnreachable with what was observed."""
    if service == "osv":
        body = json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "24.0"})
        request = urllib.request.Request(
            osv_url, body.encode(), {"Content-Type": "application/json"}, method="POST"
        )
        where = osv_url
    else:
        request = urllib.request.Request(PYPI_PROBE)
        where = PYPI_PROBE
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            json.load(answer)
    except urllib.error.HTTPError as error:
        raise ServiceUnreachable(f"{where} answered HTTP {error.code}") from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ServiceUnreachable(f"{where}: {getattr(error, 'reason', error)}") from error


def audit(lock: Path, service: str, osv_url: str) -> Report:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(lock),
        "--no-deps",  # the lock files pin every package: nothing to resolve
        "--disable-pip",
        "--strict",  # a package the service cannot look up fails the audit, not skipped
        "--vulnerability-service",
        service,
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    if service == "osv":
        command += ["--osv-url", osv_url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report: Report = json.loads(done.stdout)
    except ValueError:
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        raise ServiceUnreachable(
            f"pip-audit could not audit {lock.name}: {errors[-1] if errors else done.returncode}"
        ) from None
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--service",
        choices=("osv", "pypi"),
        default=os.environ.get("ABONO_AUDIT_SERVICE", "osv"),
        help="the vulnerability service (default osv; ABONO_AUDIT_SERVICE)",
    )
    parser.add_argument(
        "--osv-url",
        default=os.environ.get("ABONO_AUDIT_OSV_URL", OSV_URL),
        help="an OSV API (a mirror, say; ABONO_AUDIT_OSV_URL)",
    )
    args = parser.parse_args(argv)
    try:
        excused = read_exceptions(EXCEPTIONS)
        probe(args.service, args.osv_url)
        reports = {lock.name: audit(lock, args.service, args.osv_url) for lock in LOCKS}
    except ServiceUnreachable as error:
        print(
            f"error: the dependency audit cannot run here: {error}.\n"
            f"The {args.service} vulnerability service must be reachable; nothing was audited "
            "and this is not a pass (docs/dependencies.md).",
            file=sys.stderr,
        )
        return UNREACHABLE
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREACHABLE
    failed = False
    for name, report in reports.items():
        found = vulnerabilities(report)
        dependencies: list[Report] = report.get("dependencies", [])
        audited = sum(1 for dependency in dependencies if "skip_reason" not in dependency)
        print(f"{name}: {audited} packages audited ({args.service}), {len(found)} known issues")
        lines, lock_failed = verdict(found, excused)
        print("\n".join(f"  {line}" for line in lines) or "  none")
        failed |= lock_failed
    if failed:
        print(
            "error: a vulnerable package has a fixed version: upgrade it in the lock file, "
            "or excuse it in requirements/audit-exceptions.txt with the reason",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
