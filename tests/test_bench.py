"""The bench's pure parts: wrk's request script, and CPU split by thread kind."""

from __future__ import annotations

import ctypes
import threading
import time

import orjson
import psutil

from experiments.bench.profile import _threads_cpu_s, request_body, wrk_script

PR_SET_NAME = 15


def test_wrk_script_quotes_any_body() -> None:
    body = orjson.dumps({"data": {"k": "]]", "l": "]=]"}})
    script = wrk_script(body)
    opening = script.index("wrk.body = [") + len("wrk.body = [")
    level = script[opening:].index("[")
    close = "]" + "=" * level + "]"
    assert script.rstrip().endswith(close)
    inner = script[opening + level + 1:script.rstrip().rindex(close)]
    assert inner == body.decode() and close not in inner
    assert orjson.loads(request_body(3)) == [orjson.loads(request_body(1))] * 3


def test_threads_named_like_librdkafkas_are_counted_apart() -> None:
    """librdkafka names its threads `rdk:*`; a thread so named that burns 0.3 s of CPU
    must show in the librdkafka share, not in the Python one."""
    spun, release = threading.Event(), threading.Event()

    def spin() -> None:
        ctypes.CDLL("libc.so.6").prctl(PR_SET_NAME, b"rdk:spin", 0, 0, 0)
        started = time.thread_time()
        while time.thread_time() - started < 0.3:
            pass
        spun.set()
        release.wait(10)  # alive while sampled: an ended thread leaves /proc/PID/task

    process = [psutil.Process()]
    before = _threads_cpu_s(process)
    thread = threading.Thread(target=spin)
    thread.start()
    try:
        assert spun.wait(30)
        after = _threads_cpu_s(process)
    finally:
        release.set()
        thread.join()
    assert after["librdkafka"] - before["librdkafka"] >= 0.25
    assert set(after) == {"librdkafka", "python"}
