"""One exception hierarchy for the experiment machinery, with fields a caller can act on."""

from __future__ import annotations


class LabError(Exception):
    """Base class of every error the experiments package raises on purpose."""


class MissingToolError(LabError):
    """A program the project needs (java, mvn) is not on PATH or too old."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} is required: {hint}")
        self.tool = tool
        self.hint = hint


class KafkaStartError(LabError):
    """The local broker did not come up; `log_tail` holds the end of its log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(f"{message}\n--- broker log (tail) ---\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail
