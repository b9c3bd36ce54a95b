"""Notebook parameters as table columns: flattening, which ones vary, configuration labels.

A *configuration* is the set of parameter values a run was executed with, minus the trial
number and anything that only says where files go: runs of one configuration are trials
of the same experiment and are aggregated together.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from experiments.params import RunParams

PRODUCER_PREFIX = "producer."

# Parameters that never define a configuration: RunParams marks them (trial, seed, where
# files go, which broker and topic, the generator's reference ceiling).
NON_CONFIG_PARAMS = RunParams.bookkeeping()
PRODUCER_PROFILE = "producer_profile"
_LOCATION_SUFFIX = re.compile(r"(^|_)(dir|path|file|url)$")

# Known modes first, in the order the article introduces them; anything else follows.
MODE_ORDER = ("durable", "fire-and-forget", "fire_and_forget", "fire-forget", "async")


def flatten_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """One flat dict of hashable scalars: nested dicts become dotted keys.

    `producer_config` becomes `producer.<setting>` (e.g. `producer.linger.ms`) so each
    librdkafka setting is a column of its own; lists become JSON text so they can be grouped.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        prefix = PRODUCER_PREFIX if key == "producer_config" else f"{key}."
        if isinstance(value, Mapping):
            for sub_key, sub_value in _flatten_nested(value).items():
                flat[prefix + sub_key] = sub_value
        else:
            flat[key] = _scalar(value)
    return flat


def _flatten_nested(value: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, sub in value.items():
        if isinstance(sub, Mapping):
            for deeper_key, deeper in _flatten_nested(sub).items():
                flat[f"{key}.{deeper_key}"] = deeper
        else:
            flat[str(key)] = _scalar(sub)
    return flat


def _scalar(value: Any) -> Any:
    if isinstance(value, list | tuple | set):
        return json.dumps(list(value), sort_keys=True, default=str)
    return value


def is_config_param(name: str) -> bool:
    """Whether a parameter column takes part in defining a configuration."""
    base = name.removeprefix("param.")
    return base not in NON_CONFIG_PARAMS and not _LOCATION_SUFFIX.search(base)


def is_producer_param(name: str) -> bool:
    """Whether a column is a producer setting (`producer.<key>`) or the producer profile."""
    return name.startswith(PRODUCER_PREFIX) or name == PRODUCER_PROFILE


def varying_params(summaries: pd.DataFrame, param_columns: Iterable[str]) -> list[str]:
    """Configuration parameters that take more than one value across the plan.

    A missing value counts as a value of its own ("the default"), so a setting given for
    some runs only still varies.
    """
    varying = []
    for column in param_columns:
        if column not in summaries or not is_config_param(column):
            continue
        if summaries[column].astype("string").fillna("\0default").nunique() > 1:
            varying.append(column)
    return varying


def distinguishing_params(summaries: pd.DataFrame, varying: Iterable[str]) -> list[str]:
    """The fewest of `varying` that still tell every configuration apart: what labels name.

    A plan built from `include` blocks varies parameters together (each block its own load
    model, connections, duration, fault time), so naming every varying parameter made
    labels of 300 characters. A parameter whose value follows from the others is left out,
    the last declared first; the mode and the producer settings always stay (they are
    what a reader compares).
    """
    keep = list(varying)
    present = [c for c in keep if c in summaries]
    if summaries.empty or not present:
        return keep

    def configurations(columns: list[str]) -> int:
        cols = [c for c in columns if c in summaries]
        return len(summaries[cols].astype("string").fillna("\0default").drop_duplicates()) if cols else 1

    wanted = configurations(keep)
    for column in reversed(list(varying)):
        if column == "mode" or is_producer_param(column):
            continue
        fewer = [c for c in keep if c != column]
        if configurations(fewer) == wanted:
            keep = fewer
    return keep


def config_labels(summaries: pd.DataFrame, varying: Iterable[str]) -> list[str]:
    """Every row's `config_label` over the parameters that tell configurations apart; if
    the short labels would merge two configurations, every varying parameter is named."""
    varying = list(varying)
    rows = summaries.to_dict("records")
    named = distinguishing_params(summaries, varying)
    short = [config_label(r, named) for r in rows]
    full = [config_label(r, varying, omit_unused=False) for r in rows]
    return short if len(set(short)) == len(set(full)) else full


def setting_name(column: str) -> str:
    """Display name of a parameter column: `producer.linger.ms` -> `linger.ms`."""
    return column.removeprefix("param.").removeprefix(PRODUCER_PREFIX)


def format_value(value: Any) -> str:
    """A parameter value as text, with integral floats shown as integers (20.0 -> 20)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "default"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    # numpy's bool is what a boolean column of a DataFrame hands back.
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    return str(value)


def is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def config_label(row: Mapping[str, Any], varying: Iterable[str], omit_unused: bool = True) -> str:
    """`durable, linger.ms=20`: the mode, then every other varying parameter that is set.

    Unset settings are left out (they are the default), which keeps labels unique because
    the set of (setting, value) pairs identifies the configuration.
    """
    # The mode comes first even when it does not vary: it is what a reader looks for.
    mode = row.get("mode")
    parts = [] if is_missing(mode) else [str(mode)]
    closed = omit_unused and row.get("load_model") == "closed"
    for column in varying:
        if column == "mode" or is_missing(row.get(column)):
            continue
        if closed and column == "rate":
            continue  # a closed loop has no offered rate: naming one would mislead
        parts.append(f"{setting_name(column)}={format_value(row[column])}")
    return ", ".join(parts) or "default"


def variant_label(row: Mapping[str, Any], settings: Iterable[str]) -> str:
    """The producer settings of a configuration: `linger.ms=20, compression.type=lz4`.

    Unset settings (and the profile called "default") are the defaults and left out; a
    configuration with none set is `default`.
    """
    parts = [
        f"{setting_name(c)}={format_value(row[c])}"
        for c in settings
        if not is_missing(row.get(c)) and not (c == PRODUCER_PROFILE and row[c] == "default")
    ]
    # " + " rather than ", ": bundles are listed side by side in sentences and legends.
    return " + ".join(parts) or "default"


def mode_rank(mode: Any) -> tuple[int, str]:
    """Sort key putting known modes in article order, unknown ones alphabetically after."""
    text = str(mode)
    return (MODE_ORDER.index(text), text) if text in MODE_ORDER else (len(MODE_ORDER), text)


def sort_key(value: Any) -> tuple[int, float, str]:
    """Sort key for parameter values: unset first, then numbers by value, then text."""
    if is_missing(value):
        return (0, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, str(value))
