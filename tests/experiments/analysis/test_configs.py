"""Parameters as columns: flattening, varying detection, configuration labels."""

from __future__ import annotations

import math

import pandas as pd

from experiments.analysis.configs import (
    config_label,
    flatten_params,
    format_value,
    is_config_param,
    varying_params,
)


def test_flatten_producer_config_and_nested_values() -> None:
    flat = flatten_params(
        {
            "mode": "durable",
            "producer_config": {"linger.ms": 20, "compression.type": "lz4"},
            "payload": {"fields": 4, "shape": {"depth": 2}},
            "topics": ["a", "b"],
        }
    )
    assert flat == {
        "mode": "durable",
        "producer.linger.ms": 20,
        "producer.compression.type": "lz4",
        "payload.fields": 4,
        "payload.shape.depth": 2,
        "topics": '["a", "b"]',
    }


def test_config_params_exclude_trial_seed_and_locations() -> None:
    assert is_config_param("mode")
    assert is_config_param("producer.linger.ms")
    for name in ("trial", "seed", "output_dir", "results_path", "param.trial", "plan_dir"):
        assert not is_config_param(name), name


def test_missing_value_counts_as_its_own_value() -> None:
    table = pd.DataFrame(
        {
            "mode": ["durable", "durable", "fire-and-forget"],
            "producer.linger.ms": [5.0, 5.0, math.nan],
            "connections": [32, 32, 32],
            "output_dir": ["a", "b", "c"],
        }
    )
    assert varying_params(table, table.columns) == ["mode", "producer.linger.ms"]


def test_config_label() -> None:
    varying = ["mode", "producer.linger.ms", "connections"]
    assert config_label({"mode": "durable", "producer.linger.ms": 20.0, "connections": 64}, varying) == (
        "durable, linger.ms=20, connections=64"
    )
    assert config_label({"mode": "durable", "producer.linger.ms": math.nan, "connections": 64}, varying) == (
        "durable, connections=64"
    )
    # Nothing varies: the mode still names what was measured.
    assert config_label({"mode": "durable"}, []) == "durable"


def test_format_value() -> None:
    assert format_value(20.0) == "20"
    assert format_value(0.5) == "0.5"
    assert format_value(None) == "default"
    assert format_value(math.nan) == "default"
    assert format_value(True) == "true"
    assert format_value(pd.Series([False]).iloc[0]) == "false"  # numpy's bool, from a column
    assert format_value("lz4") == "lz4"
