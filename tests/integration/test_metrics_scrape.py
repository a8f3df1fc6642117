"""A real ``abono serve`` with two app processes: Prometheus scrapes the callbacks' listener.

Turns are answered by whichever process the kernel hands the webhook to; each scrape is
answered by one of them too, and must count every turn (prometheus-client's multiprocess
mode, in the directory ``abono serve`` made for this run).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Product, running_product

pytestmark = pytest.mark.integration
PHONES = ["+13125550102", "+12125550101", "+17205550104"]  # James, Ana, Tom (demo accounts)


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    with running_product(tmp_path_factory.mktemp("metrics"), app_processes="2") as running:
        yield running


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_internal_listener_counts_every_processs_turns(product: Product) -> None:
    for phone in PHONES:
        for text in ("hi", "what do I owe"):
            assert product.say(phone, text)
    url = f"http://127.0.0.1:{product.settings.internal_port}/metrics"
    for _ in range(6):  # several scrapes: each may be answered by either process
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        found = samples(response.text)
        assert found[("abono_turns_total", (("channel", "sms"),))] == 6
        assert found[("abono_turn_seconds_count", (("channel", "sms"),))] == 6
        assert found[("abono_store_up", ())] == 1
        assert ("abono_outbox_depth", (("channel", "sms"),)) in found
        assert ("abono_handoff_queue_length", (("status", "open"),)) in found
