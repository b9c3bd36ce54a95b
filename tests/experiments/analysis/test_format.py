"""Number and text formats: one value reads the same in every table and sentence."""

from __future__ import annotations

from experiments.analysis._format import (
    escape_markdown,
    fmt_cores,
    fmt_count,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_range,
    fmt_ratio,
)


def test_number_formats() -> None:
    assert [fmt_num(x) for x in (4120.4, 1789.6, 12.44, 41.0, 1.234, 0.8123, 0, float("nan"))] == [
        "4,120", "1,790", "12.4", "41.0", "1.23", "0.812", "0", "n/a",
    ]  # fmt: skip
    assert fmt_ms(12.44) == "12.4 ms"
    assert fmt_count(48528.0) == "48,528"
    assert [fmt_pct(x) for x in (0.35, 0.045, 0.000112)] == ["35%", "4.5%", "0.0112%"]
    assert fmt_ratio(2.34) == "2.3x"
    assert fmt_cores(140.0) == "1.4"
    assert fmt_range(1779.0, 1788.3) == "1,779-1,788"
    assert fmt_range(5.0, 5.001) == "5.00"


def test_markdown_is_escaped() -> None:
    assert escape_markdown("linger.ms=5, a_b *c* `d`") == "linger.ms=5, a\\_b \\*c\\* \\`d\\`"
