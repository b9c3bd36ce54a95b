"""The bench's pure parts: its request bodies, and CPU split by thread kind (wrk's script
and output are tested with experiments/load/wrk.py, in tests/load/test_runs.py)."""

from __future__ import annotations

import ctypes
import threading
import time

import orjson
import psutil

from experiments.bench.profile import _threads_cpu_s, request_body

PR_SET_NAME = 15


def test_a_batch_body_is_the_event_repeated() -> None:
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
