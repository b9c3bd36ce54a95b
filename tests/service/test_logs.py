"""Logs are one JSON object per line with ts, level, logger, msg and the extra fields."""

from __future__ import annotations

import logging

import orjson

from service.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.getLogger("service.test").makeRecord(
        "service.test", logging.WARNING, __file__, 1, "sent %d", (3,), None, extra=extra)
    return record


def test_one_json_object_with_fields() -> None:
    line = JsonFormatter().format(_record(undelivered=2, color_message="\x1b[1m"))
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "service.test"
    assert entry["msg"] == "sent 3"
    assert entry["undelivered"] == 2
    assert "color_message" not in entry
    assert entry["ts"].endswith("+00:00")


def test_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in orjson.loads(line)["exc"]


def test_access_log_is_off_unless_asked_for() -> None:
    from service.logs import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        assert logging.getLogger("uvicorn.access").disabled
        configure_logging("INFO", access_log=True)
        assert not logging.getLogger("uvicorn.access").disabled
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("uvicorn.access").disabled = False
