"""Number and text formatting shared by takeaways, tables and plots, so one value reads the
same way everywhere in a report (and tests can find it)."""

from __future__ import annotations

import math
from typing import Any

# What every takeaway says when the plan holds no run with a result.
NO_RESULTS = "no run of this plan produced results"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def fmt_num(value: Any) -> str:
    """Three significant digits, thousands separated: 4,120 / 12.4 / 1.23 / 0.812."""
    if _missing(value):
        return "n/a"
    x = float(value)
    magnitude = abs(x)
    if magnitude >= 100:
        return f"{x:,.0f}"
    if magnitude >= 10:
        return f"{x:.1f}"
    if magnitude >= 1:
        return f"{x:.2f}"
    if magnitude == 0:
        return "0"
    return f"{x:.3g}"


def fmt_rate(value: Any) -> str:
    """Events or requests per second (no unit, the sentence says it)."""
    return fmt_num(value)


def fmt_ms(value: Any) -> str:
    """A latency with its unit: `12.4 ms`."""
    return "n/a" if _missing(value) else f"{fmt_num(value)} ms"


def fmt_count(value: Any) -> str:
    """A count of things: `48,528`."""
    return "n/a" if _missing(value) else f"{round(float(value)):,}"


def fmt_pct(fraction: Any) -> str:
    """A fraction as a percentage: 0.35 -> `35%`, 0.045 -> `4.5%`, 0.000112 -> `0.0112%`."""
    if _missing(fraction):
        return "n/a"
    percent = float(fraction) * 100
    if abs(percent) >= 10:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%" if abs(percent) >= 1 else f"{fmt_num(percent)}%"


def fmt_ratio(value: Any) -> str:
    """How many times: `2.3x`."""
    return "n/a" if _missing(value) else f"{float(value):.1f}x"


def fmt_cores(cpu_percent: Any) -> str:
    """CPU percent (100 = one core) as cores: 140 -> `1.4`."""
    if _missing(cpu_percent):
        return "n/a"
    cores = float(cpu_percent) / 100
    return f"{cores:.1f}" if cores >= 0.1 or cores == 0 else f"{cores:.2f}"


def fmt_range(low: Any, high: Any, fmt: Any = fmt_num) -> str:
    """`1,779-1,788`, or the single value when both ends agree."""
    if _missing(low) or _missing(high):
        return "n/a"
    a, b = fmt(low), fmt(high)
    return a if a == b else f"{a}-{b}"


def fmt_seconds(value: Any) -> str:
    """A duration: `2.61 s`; `never` when it did not end."""
    return "never" if _missing(value) else f"{fmt_num(value)} s"


def plural(count: int, noun: str) -> str:
    """`1 run`, `2 runs`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def escape_markdown(text: str) -> str:
    """Keep Markdown from reading parameter values (`*`, `_`) as emphasis."""
    for char in ("\\", "*", "_", "`"):
        text = text.replace(char, "\\" + char)
    return text
