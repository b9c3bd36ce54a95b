"""One request and its answer: the only code on the hot path besides the two loop models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter_ns

import aiohttp
import orjson

from experiments.load.recorder import Recorder

# (ids acknowledged, events accepted) from the body of a 2xx answer.
IdParser = Callable[[bytes], tuple[list[str], int]]
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def parse_text(payload: bytes) -> tuple[list[str], int]:
    """`POST /` and the no-op endpoint answer with the bare event id."""
    event_id = payload.decode("utf-8", "replace").strip()
    return ([event_id] if event_id else []), 1


def parse_single(payload: bytes) -> tuple[list[str], int]:
    try:
        event_id = orjson.loads(payload).get("event_id")
    except (orjson.JSONDecodeError, AttributeError):
        return [], 1
    return ([str(event_id)] if event_id else []), 1


def parse_batch(payload: bytes) -> tuple[list[str], int]:
    """Ids of the events a 2xx batch answer accepted, tolerant of the answer's exact shape.

    Accepts `{"results": [...]}` or a bare list; an item counts when it has an
    `event_id` and neither a truthy `error` nor a non-2xx `status`. Only these are
    counted as accepted, so a batch answer without ids accepts nothing we can audit.
    """
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return [], 0
    results = body.get("results") if isinstance(body, dict) else body
    if not isinstance(results, list):
        return [], 0
    ids = []
    for item in results:
        if not isinstance(item, dict) or item.get("error"):
            continue
        status = item.get("status")
        if isinstance(status, int) and not 200 <= status < 300:
            continue
        event_id = item.get("event_id")
        if event_id:
            ids.append(str(event_id))
    return ids, len(ids)


PARSERS: dict[str, IdParser] = {
    "seed": parse_text,
    "noop": parse_text,
    "single": parse_single,
    "batch": parse_batch,
}


def open_session(connections: int, timeout_s: float,
                 headers: dict[str, str]) -> aiohttp.ClientSession:
    """One keep-alive session per worker, stripped of per-request work we do not need."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        headers=headers,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


class Sender:
    """Sends the next body of the pool and records the outcome against a reference time."""

    def __init__(self, session: aiohttp.ClientSession, url: str, bodies: list[bytes],
                 parse: IdParser, recorder: Recorder) -> None:
        self.session = session
        self.url = url
        self.bodies = bodies
        self.parse = parse
        self.recorder = recorder
        self._next = 0

    async def send(self, slot: int, t_ref_ns: int) -> None:
        """Latency is measured from `t_ref_ns`: the send time, or the intended send time."""
        bodies = self.bodies
        body = bodies[self._next % len(bodies)]
        self._next += 1
        rec = self.recorder
        try:
            async with self.session.post(self.url, data=body, allow_redirects=False) as resp:
                payload = await resp.read()
                status = resp.status
        except TRANSPORT_ERRORS as exc:
            rec.transport_error(slot, exc, perf_counter_ns())
            return
        t_done = perf_counter_ns()
        if 200 <= status < 300:
            ids, events = self.parse(payload)
            if not ids:
                rec.unparsed += 1
            rec.accepted(slot, t_done - t_ref_ns, ids, events, t_done, status)
        else:
            rec.rejected(slot, status, t_done)
