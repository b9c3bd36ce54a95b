"""The OpenAPI document the hot path must not change: routes, schemas and answers.

`data/openapi*.json` were written from the app as it was before the ingest hot path
(commit a0eced7). A change that makes the document more precise updates them on purpose.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from service import Settings, create_app

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize(("bench", "snapshot"), [(False, "openapi.json"),
                                                 (True, "openapi-bench.json")])
@pytest.mark.parametrize("hot_path", [True, False])
def test_document_matches_the_snapshot(bench: bool, snapshot: str, hot_path: bool) -> None:
    document = create_app(Settings(bench_endpoints=bench, hot_path=hot_path)).openapi()
    expected = orjson.loads((DATA / snapshot).read_bytes())
    assert set(document["paths"]) == set(expected["paths"])
    for path, operations in expected["paths"].items():
        assert document["paths"][path] == operations, path
    assert document == expected
