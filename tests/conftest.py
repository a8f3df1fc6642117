"""One real engine and one real app for the whole test session, on spare loopback ports.

The app runs as its own process (``abono serve``) with a fresh SQLite database and the demo
accounts; the engine loads the trained model and calls back into that app for actions and
for every response's text, exactly as in production.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import Product, running_product

# The tests run the sandbox (a bare start is production, which refuses the sandbox's secrets):
# every Settings() they build and every process they start inherits it. A test of production
# passes sandbox=False explicitly.
os.environ["ABONO_SANDBOX"] = "true"

# Property tests and fuzzing (docs/fuzzing.md): CI runs the same bounded, derandomized cases on
# every run; HYPOTHESIS_PROFILE=fuzz-long searches twenty times longer with fresh randomness.
# A test's own max_examples wins over the profile's.
settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, database=None)
settings.register_profile("fuzz-long", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    with running_product(tmp_path_factory.mktemp("product")) as running:
        yield running


def db_path(product: Product) -> Path:
    return product.database
