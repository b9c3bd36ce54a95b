"""Request bodies: seeded, encoded once before the run so the hot loop only picks bytes."""

from __future__ import annotations

import random
import string
from pathlib import Path

import orjson

from experiments.load.spec import LoadSpec

# Enough distinct bodies that the service cannot profit from seeing the same bytes twice
# in a row, few enough (and capped in bytes) that the pool never dominates memory.
POOL_SIZE = 256
POOL_BYTES_CAP = 64 * 1024 * 1024
_ALPHABET = string.ascii_letters + string.digits


def make_event(rng: random.Random, data_fields: int, field_size: int, client_id: str) -> dict:
    """One event of the seed's shape: `{"client_id", "name", "data": {...}}`."""
    data = {f"f{j}": "".join(rng.choices(_ALPHABET, k=field_size)) for j in range(data_fields)}
    return {"client_id": client_id, "name": f"lab_event_{rng.randrange(16)}", "data": data}


def body_pool(spec: LoadSpec, worker: int = 0) -> list[bytes]:
    """The encoded bodies worker `worker` cycles through; identical for identical inputs.

    Each worker gets its own stream (seeded by `seed` and the worker index) so workers
    do not send byte-identical sequences; a `body_file` is sent as it is, by every worker.
    """
    if spec.body_file is not None:
        return [Path(spec.body_file).read_bytes()]
    rng = random.Random(f"{spec.seed}/{worker}")
    client_id = f"lab-{spec.seed}-w{worker}"
    per_event = max(1, spec.data_fields * (spec.field_size + 12) + 64)
    per_body = per_event * (spec.batch_size if spec.endpoint == "batch" else 1)
    size = max(1, min(POOL_SIZE, POOL_BYTES_CAP // per_body))
    pool: list[bytes] = []
    for _ in range(size):
        if spec.endpoint == "batch":
            batch = [
                make_event(rng, spec.data_fields, spec.field_size, client_id)
                for _ in range(spec.batch_size)
            ]
            pool.append(orjson.dumps(batch))
        else:
            pool.append(orjson.dumps(make_event(rng, spec.data_fields, spec.field_size, client_id)))
    return pool
