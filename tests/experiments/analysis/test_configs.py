"""Parameters as columns: flattening, varying detection, configuration labels."""

from __future__ import annotations

import math

import pandas as pd

from experiments.analysis.configs import (
    config_label,
    config_labels,
    distinguishing_params,
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


def test_labels_name_only_what_tells_configurations_apart() -> None:
    # Two include blocks, as the decision plan has: capacity steps (open loop) and faults
    # (closed loop). Their load model, connections and fault time follow from the block.
    rows = [{"mode": m, "load_model": "open", "connections": 400, "rate": r, "fault": "none",
             "param.fault_at_s": 5, "producer.linger.ms": math.nan}
            for m in ("durable", "fire-and-forget") for r in (1000.0, 2000.0)]
    rows += [{"mode": "durable", "load_model": "closed", "connections": 50, "rate": 1000.0, "fault": f,
              "param.fault_at_s": 10, "producer.linger.ms": linger}
             for f in ("broker-kill", "service-kill") for linger in (math.nan, 20.0)]
    summaries = pd.DataFrame(rows)
    varying = ["mode", "load_model", "connections", "rate", "fault", "param.fault_at_s",
               "producer.linger.ms"]
    assert distinguishing_params(summaries, varying) == ["mode", "rate", "fault", "producer.linger.ms"]
    labels = config_labels(summaries, varying)
    assert labels[:2] == ["durable, rate=1000, fault=none", "durable, rate=2000, fault=none"]
    # A closed loop has no offered rate; the setting stays even where it alone differs.
    assert labels[4:6] == ["durable, fault=broker-kill", "durable, fault=broker-kill, linger.ms=20"]
    assert len(set(labels)) == len(rows)


def test_short_labels_never_merge_configurations() -> None:
    # Closed-loop runs that differ only in their (unused) rate: leaving the rate out would
    # merge them, so every varying parameter is named.
    summaries = pd.DataFrame([{"mode": "durable", "load_model": "closed", "rate": r}
                              for r in (1000.0, 2000.0)])
    assert config_labels(summaries, ["mode", "rate"]) == ["durable, rate=1000", "durable, rate=2000"]
