"""Parameters the routes share, bounded so that what the store cannot hold is a 422.

A handoff id past SQLite's and PostgreSQL's 64-bit integers (9223372036854775808) reached the
query and failed there with OverflowError, a 500 (found by tests/unit/test_api_fuzz.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ROW_ID = 2**63 - 1  # BIGINT's and SQLite INTEGER's largest

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row's id in the store.")]
AfterId = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="Only rows after this id.")]
