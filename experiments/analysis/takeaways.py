"""One-line conclusions computed from the runs: each figure's caption, never typed by hand.

Every function takes the loaded runs and returns one sentence. Plans with one mode, one
configuration or one trial get a sentence that says so instead of a comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from experiments.analysis import aggregate
from experiments.analysis._effects import setting_effect
from experiments.analysis._format import (
    fmt_cores,
    fmt_count,
    fmt_ms,
    fmt_pct,
    fmt_range,
    fmt_rate,
    fmt_ratio,
    fmt_seconds,
)
from experiments.analysis.configs import format_value, is_missing
from experiments.analysis.runs import Runs
from experiments.rundir import COMPONENTS

__all__ = [
    "audit",
    "capacity",
    "cpu",
    "failed",
    "faults",
    "latency",
    "ramp",
    "replication",
    "saturation",
    "search",
    "setting_effect",
    "spread",
    "throughput",
]

NO_RESULTS = "no run of this plan produced results"
# A knee: p99 grows by this factor while throughput grows by less than KNEE_GAIN.
KNEE_P99_FACTOR = 1.5
KNEE_GAIN = 0.10


def _trials_phrase(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    if high == 1:
        return "one trial each" if len(counts) > 1 else "one trial"
    return f"median of {high} trials" if low == high else f"median of {low}-{high} trials"


def _best_per_mode(table: pd.DataFrame) -> pd.DataFrame:
    """Each mode's configuration with the highest median throughput, best mode first."""
    best = table.loc[table.groupby("mode", sort=False)["events_per_s_median"].idxmax()]
    return best.sort_values("events_per_s_median", ascending=False)


def throughput(runs: Runs) -> str:
    """Which mode sustained more events per second, and by how much.

    Throughput is what completed inside the measured window. A configuration with an
    overloaded trial did not sustain anything: it is left out of the comparison and named
    with what it completed of what was offered.
    """
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    table = table.dropna(subset=["events_per_s_median"])
    if table.empty:
        return "no run reported its throughput"
    overloaded = table[table["overloaded_trials"] > 0]
    steady = table[table["overloaded_trials"] == 0]
    if steady.empty:
        return "every configuration was overloaded, so none sustained a rate: " + _overloaded_list(overloaded)
    text = _sustained(steady)
    if len(overloaded):
        text += "; overloaded, so not steady and left out: " + _overloaded_list(overloaded)
    return text


def _sustained(table: pd.DataFrame) -> str:
    best = _best_per_mode(table)
    several = table.groupby("mode").size().max() > 1
    trials = _trials_phrase(list(best["trials"]))
    if len(best) == 1:
        row = best.iloc[0]
        spread = fmt_range(row["events_per_s_min"], row["events_per_s_max"], fmt_rate)
        where = f" ({row['configuration']})" if several else ""
        up_to = "up to " if several else ""
        text = f"{row['mode']} sustained {up_to}{fmt_rate(row['events_per_s_median'])} events/s{where}"
        return text + (f", {trials}, range {spread}" if row["trials"] > 1 else f", {trials}")
    top, rest = best.iloc[0], best.iloc[1:]
    if len(rest) == 1:
        other = rest.iloc[0]
        ratio = top["events_per_s_median"] / other["events_per_s_median"]
        text = (
            f"{top['mode']} sustained {fmt_ratio(ratio)} the throughput of {other['mode']} "
            f"({fmt_rate(top['events_per_s_median'])} vs "
            f"{fmt_rate(other['events_per_s_median'])} events/s, {trials})"
        )
    else:
        others = ", ".join(f"{fmt_rate(r['events_per_s_median'])} ({r['mode']})" for _, r in rest.iterrows())
        text = (
            f"{top['mode']} sustained the most: {fmt_rate(top['events_per_s_median'])} "
            f"events/s vs {others} ({trials})"
        )
    if several:
        text += "; " + "; ".join(
            f"best {r['mode']} configuration: {_without_mode(r['configuration'], r['mode'])}"
            for _, r in best.iterrows()
            if (table["mode"] == r["mode"]).sum() > 1
        )
    return text


def _overloaded_list(table: pd.DataFrame) -> str:
    """`durable, rate=3000 completed 1,000 of 3,000 requests/s offered (77% unfinished)`."""
    parts = []
    for _, row in table.iterrows():
        trials = (
            ""
            if row["overloaded_trials"] == row["trials"]
            else (f", overloaded in {row['overloaded_trials']} of {row['trials']} trials")
        )
        parts.append(
            f"{row['configuration']} completed {fmt_rate(row['throughput_rps_median'])} of "
            f"{fmt_rate(row['offered_rps_median'])} requests/s offered "
            f"({fmt_pct(row['unfinished_fraction_median'])} unfinished{trials})"
        )
    return ", ".join(parts)


def _without_mode(config: str, mode: str) -> str:
    """`durable, linger.ms=5` -> `linger.ms=5` (the mode is already in the sentence)."""
    rest = config.removeprefix(f"{mode}, ")
    return "the default settings" if rest == mode else rest


def ramp(runs: Runs) -> str:
    """How fast each configuration reached its steady rate (the seed's 4K -> 45K picture).

    Rates are completions per second. An overloaded configuration has no steady rate: the
    sentence says what it completed against what was offered instead.
    """
    table = aggregate.ramp(runs)
    if table.empty:
        return "no per-second series was recorded"
    offered = aggregate.config_table(runs).set_index("configuration")
    parts = []
    for _, row in table.iterrows():
        config = row["configuration"]
        if row["overloaded_trials"] > 0:
            trials = int(offered.at[config, "trials"])
            parts.append(
                f"{config} never reached a steady rate: overloaded in {row['overloaded_trials']} of "
                f"{trials} trials, it completed a median {fmt_rate(row['steady_rate'])} events/s "
                f"per second of the window against {fmt_rate(offered.at[config, 'offered_rps_median'])} "
                "requests/s offered"
            )
        elif is_missing(row["seconds_to_steady"]) or row["seconds_to_steady"] <= 1:
            parts.append(
                f"{config} ran at its steady {fmt_rate(row['steady_rate'])} events/s from the first second"
            )
        else:
            parts.append(
                f"{config} ramped from {fmt_rate(row['first_rate'])} to "
                f"{fmt_rate(row['steady_rate'])} events/s in {int(row['seconds_to_steady'])} s"
            )
    start = "counting from the first warm-up second, " if table["warmup_s"].max() > 0 else ""
    return (
        start + "; ".join(parts) + " (steady: median per-second rate of completions in the "
        "measured window; reached: 90% of it)"
    )


def latency(runs: Runs) -> str:
    """p99 and p99.9 of each configuration, from the merged histograms of its trials."""
    spectrum = aggregate.percentile_spectrum(runs, (99.0, 99.9))
    if spectrum.empty:
        return "no latency histogram was recorded"

    def value(config: str, p: float) -> str:
        row = spectrum[(spectrum["configuration"] == config) & (spectrum["percentile"] == p)].iloc[0]
        return fmt_ms(row["latency_ms"]) if row["resolved"] else "n/a (too few samples)"

    configs = list(dict.fromkeys(spectrum["configuration"]))
    if len(configs) == 1:
        config = configs[0]
        samples = fmt_count(spectrum["samples"].iloc[0])
        trials = int((runs.summaries["configuration"] == config).sum())
        source = "histogram of its one trial" if trials == 1 else f"merged histogram of {trials} trials"
        return (
            f"p99 of {config} is {value(config, 99.0)}; p99.9 {value(config, 99.9)} "
            f"({source}, {samples} requests)"
        )
    parts = [f"{c} {value(c, 99.0)} / {value(c, 99.9)}" for c in configs]
    return "p99 / p99.9 from the merged histograms of all trials: " + "; ".join(parts)


def saturation(runs: Runs) -> str:
    """Where each configuration stopped completing what was offered (open loop), or how p99
    moved with achieved throughput (closed loop)."""
    if not aggregate.saturation_table(runs).empty:
        return _open_saturation(runs)
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    parts = []
    table = table.dropna(subset=["events_per_s_median", "p99_ms_median"])
    if table.empty:
        return "no run reported both its throughput and its p99"
    for mode, group in table.groupby("mode", sort=False):
        group = group.sort_values("events_per_s_median")
        rates, p99 = list(group["events_per_s_median"]), list(group["p99_ms_median"])
        if len(group) == 1:
            parts.append(f"{mode}: one configuration, p99 {fmt_ms(p99[0])} at {fmt_rate(rates[0])} events/s")
            continue
        verb = "rose" if p99[-1] > p99[0] else "fell"
        text = (
            f"{mode}: p99 {verb} from {fmt_ms(p99[0])} at {fmt_rate(rates[0])} events/s "
            f"to {fmt_ms(p99[-1])} at {fmt_rate(rates[-1])} events/s"
        )
        for i in range(1, len(rates)):
            gain = rates[i] / rates[i - 1] - 1
            growth = p99[i] / p99[i - 1]
            if growth >= KNEE_P99_FACTOR and gain < KNEE_GAIN:
                text += (
                    f"; knee near {fmt_rate(rates[i - 1])} events/s: the next step "
                    f"added {fmt_pct(gain)} throughput for {fmt_ratio(growth)} the p99"
                )
                break
        parts.append(text)
    return "; ".join(parts) + " (medians of trials)"


def _open_saturation(runs: Runs) -> str:
    table = aggregate.saturation_table(runs)
    knees = aggregate.knees(runs)
    parts = []
    for sweep, group in table.groupby("configuration", sort=False):
        group = group.sort_values("offered_rps")
        over = group[group["overloaded_trials"] > 0]
        held = group if over.empty else group[group["offered_rps"] < over["offered_rps"].iloc[0]]
        if held.empty:
            first = over.iloc[0]
            parts.append(
                f"{sweep}: overloaded from the lowest offered rate, {fmt_rate(first['offered_rps'])}/s "
                f"(completed {fmt_rate(first['events_per_s_median'])} events/s)"
            )
            continue
        low, high = held.iloc[0], held.iloc[-1]
        text = f"{sweep}: completed what was offered up to {fmt_rate(high['offered_rps'])}/s"
        if len(held) > 1:
            text += (
                f" (p99 {fmt_ms(low['p99_ms_median'])} at {fmt_rate(low['offered_rps'])}/s, "
                f"{fmt_ms(high['p99_ms_median'])} at {fmt_rate(high['offered_rps'])}/s)"
            )
        else:
            text += f" (p99 {fmt_ms(high['p99_ms_median'])})"
        if over.empty:
            parts.append(text + "; not overloaded at any offered rate measured, so no knee")
            continue
        first = over.iloc[0]
        trials = (
            ""
            if first["overloaded_trials"] == first["trials"]
            else (f" in {first['overloaded_trials']} of {first['trials']} trials")
        )
        text += (
            f"; at {fmt_rate(first['offered_rps'])}/s it was overloaded{trials}, completing "
            f"{fmt_rate(first['events_per_s_median'])} events/s with p99 {fmt_ms(first['p99_ms_median'])}"
        )
        knee = knees.get(sweep)
        if knee is not None:
            text += f": knee near {fmt_rate(knee)}/s"
        parts.append(text)
    return "; ".join(parts) + " (medians of trials; rates offered in requests/s)"


def capacity(runs: Runs) -> str:
    """The highest offered rate each configuration holds within the plan's p99 budget.

    Empty when the plan sets no budget or has no open-loop run: there is nothing to say.
    """
    table = aggregate.capacity(runs)
    if table.empty:
        return ""
    budget = f"p99 <= {format_value(float(table['slo_p99_ms'].iloc[0]))} ms"
    parts = []
    for i, (_, row) in enumerate(table.iterrows()):
        subject = f"{row['configuration']} holds {budget}" if i == 0 else str(row["configuration"])
        unit = " events/s" if i == 0 else ""
        if is_missing(row["median"]):
            parts.append(f"{subject} at none of the offered rates measured")
            continue
        at_least = "at least " if row["all_held"] else ""
        text = f"{subject} up to {at_least}{fmt_rate(row['median'])}{unit}"
        if row["source"] != "search" and row["trials"] > 1 and row["min"] != row["max"]:
            spread = fmt_range(row["min"], row["max"], fmt_rate)
            text += f" (median of {row['trials']} trials, range {spread})"
        elif row["source"] != "search" and row["trials"] > 1:
            text += f" (in each of {row['trials']} trials)"
        parts.append(text)
    text = ", ".join(parts)
    if (table["source"] == "search").any():
        text += f" ({_search_note(runs)})"
    elif table["all_held"].any():
        text += " (at least: the highest rate measured still held)"
    return text


def _search_note(runs: Runs) -> str:
    path = aggregate.search_path(runs)
    resolution = (runs.search or {}).get("resolution")
    steps = path.groupby("configuration", sort=False).size()
    run_count = int(path["trials"].sum())
    return (
        f"capacity search to a resolution of {fmt_rate(resolution)}/s: "
        f"{_plural(int(steps.max()) if len(steps) else 0, 'step')} per configuration, "
        f"{run_count} runs in all"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def search(runs: Runs) -> str:
    """The capacity search's path per configuration: each value tried and whether it held."""
    path = aggregate.search_path(runs)
    if path.empty:
        return ""
    parts = []
    for config, steps in path.groupby("configuration", sort=False):
        tried = ", ".join(
            f"{fmt_rate(r['value'])} {'holds' if r['holds'] else 'fails'}" for _, r in steps.iterrows()
        )
        low, high = steps["bracket_low"].iloc[0], steps["bracket_high"].iloc[0]
        parts.append(f"{config}: {tried}; capacity between {fmt_range(low, high, fmt_rate)}/s")
    return "; ".join(parts)


def cpu(runs: Runs) -> str:
    """Cores used per component, the busiest one, and whether the generator was the limit."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    parts, busiest = [], []
    for _, row in table.iterrows():
        used = {c: row[f"cpu_{c}_median"] for c in COMPONENTS}
        used = {c: v for c, v in sorted(used.items(), key=lambda kv: -_value(kv[1]))}
        top = next(iter(used))
        busiest.append(top)
        listed = ", ".join(f"{c} {fmt_cores(v)}" for c, v in used.items())
        per_core = row["events_per_s_median"] / (row["cpu_service_median"] / 100)
        parts.append(
            f"{row['configuration']}: {listed} of {fmt_count(row['cores'])} cores "
            f"({fmt_rate(per_core)} events/s per service core)"
        )
    text = "; ".join(parts)
    if len(set(busiest)) == 1:
        text += f". The busiest component is the {busiest[0]} in every configuration"
    else:
        text += ". The busiest component differs between configurations"
    known = table[table["cpu_machine_median"].notna() & table["cores"].notna()]
    saturated = known[known["cpu_machine_median"] >= 0.9 * known["cores"].astype(float) * 100]
    if len(saturated):
        text += "; the machine was saturated in " + ", ".join(saturated["configuration"])
    text += _busy_box(runs)
    bound = runs.summaries[runs.summaries["generator_bound"].fillna(False).astype(bool)]
    if len(bound):
        configs = ", ".join(dict.fromkeys(bound["configuration"]))
        text += (
            f"; the generator was flagged generator-bound in {len(bound)} of "
            f"{len(runs.summaries)} runs ({configs}): there the client, not the service, "
            "set the limit"
        )
    return text


def _busy_box(runs: Runs) -> str:
    """Runs where everything else on the box took more than 10% of it: their CPU was shared."""
    s = runs.summaries
    busy = s[aggregate.busy_box(s)]
    if busy.empty:
        return ""
    which = ", ".join(
        f"{r['run']}: {fmt_cores(r['cpu_other'])} of {fmt_count(r['cores'])} cores"
        for _, r in busy.iterrows()
    )
    return (
        f"; other processes on the box used more than {fmt_pct(aggregate.CPU_OTHER_SHARE)} of it in "
        f"{len(busy)} of {len(s)} runs ({which}): those runs shared the machine with work the "
        "suite did not start"
    )


def _value(x: object) -> float:
    return -math.inf if is_missing(x) else float(x)  # type: ignore[arg-type]


def audit(runs: Runs) -> str:
    """Whether any acknowledged event is missing from Kafka, and any duplicates."""
    s = runs.summaries
    if s.empty:
        return NO_RESULTS
    audited = s[s["lost"].notna()]
    missing = len(s) - len(audited)
    total = fmt_count(audited["acknowledged"].sum())
    lossy = audited[audited["lost"] > 0]
    if len(audited) == 0:
        text = "no run recorded a delivery audit"
    elif lossy.empty:
        text = (
            f"no acknowledged event was lost in any of the {len(audited)} audited runs "
            f"({total} acknowledged events checked)"
        )
    else:
        which = ", ".join(
            f"{r['run']}: {fmt_count(r['lost'])} of {fmt_count(r['acknowledged'])}"
            for _, r in lossy.iterrows()
        )
        runs_word = "run" if len(lossy) == 1 else "runs"
        text = (
            f"{fmt_count(lossy['lost'].sum())} acknowledged events lost in {len(lossy)} "
            f"{runs_word} of {len(audited)} ({which})"
        )
    duplicated = audited[audited["duplicates"].fillna(0) > 0]
    if len(duplicated):
        runs_word = "run" if len(duplicated) == 1 else "runs"
        text += f"; {fmt_count(duplicated['duplicates'].sum())} duplicates in {len(duplicated)} {runs_word}"
    elif len(audited):
        text += "; no duplicates"
    if missing:
        text += f"; {missing} runs have no audit"
    return text


FAULT_EVENTS = {
    "service-kill": "the service was killed",
    "service-term": "the service was stopped with SIGTERM",
    "broker-kill": "the partition leader was killed",
    "broker-pause": "the broker was paused",
    "broker-restart": "the broker was restarted",
}


def fault_phrase(kind: str) -> str:
    """`when the broker was paused and then the service was killed` (kinds chain with `+`)."""
    events = [FAULT_EVENTS.get(part, f"{part} happened") for part in str(kind).split("+")]
    return "when " + " and then ".join(events)


def faults(runs: Runs) -> str:
    """Per fault kind, which mode lost acknowledged events and how long service was out."""
    table = aggregate.fault_table(runs)
    if table.empty:
        return ""
    sentences = []
    for kind, group in table.groupby("fault", sort=False):
        phrase = fault_phrase(str(kind))
        # Any trial's loss counts: the median alone would call one lossy trial of three clean.
        lossy = group[group["lost_max"].fillna(0) > 0]
        clean = group[group["lost_max"].fillna(0) == 0]
        parts = []
        for _, row in lossy.iterrows():
            if row["lost_trials"] == row["trials"]:
                parts.append(
                    f"{_who(group, row)} acknowledged "
                    f"{fmt_count(row['lost_median'])} events it never delivered {phrase}"
                    f"{_trial_spread(row, 'lost', fmt_count)}"
                )
            else:
                parts.append(
                    f"{_who(group, row)} acknowledged events it never delivered {phrase} in "
                    f"{row['lost_trials']} of {row['trials']} trials (up to "
                    f"{fmt_count(row['lost_max'])}; median {fmt_count(row['lost_median'])})"
                )
        if lossy.empty:
            parts.append(f"no mode lost an acknowledged event {phrase}")
        else:
            parts += [f"{_who(group, r)} lost none" for _, r in clean.iterrows()]
        outage = ", ".join(
            f"{fmt_seconds(r['unavailable_s_median'])} ({_who(group, r)})" for _, r in group.iterrows()
        )
        sentence = "; ".join(parts) + f"; first successful answer after the fault start: {outage}"
        low, high = group["recovered_after_s_min"].min(), group["recovered_after_s_max"].max()
        if str(kind) == "broker-kill" and not (pd.isna(low) or pd.isna(high)):
            # Kafka moves leadership only once the dead broker's session has timed out; how
            # long that took decides what buffered fire-and-forget events outlive.
            sentence += (f"; another node led the partition {fmt_range(low, high, fmt_seconds)} "
                         f"after the kill (all trials)")
        never = group[group["never_recovered"] > 0]
        if len(never):
            sentence += "; never answered again in " + ", ".join(
                f"{r['never_recovered']} of {r['trials']} trials ({r['configuration']})" for _, r in never.iterrows()
            )
        failed_injection = group[group["not_injected"] > 0]
        if len(failed_injection):
            sentence += "; the fault was NOT injected in " + ", ".join(
                f"{r['not_injected']} of {r['trials']} trials ({r['configuration']})"
                for _, r in failed_injection.iterrows()
            )
        sentences.append(sentence)
    return "; ".join(sentences)


def _who(group: pd.DataFrame, row: pd.Series) -> str:
    """The mode, or the whole configuration when the mode alone is ambiguous in `group`."""
    return str(row["configuration"] if int((group["mode"] == row["mode"]).sum()) > 1 else row["mode"])


def _trial_spread(row: pd.Series, metric: str, fmt: object) -> str:
    if row["trials"] < 2:
        return " (one trial)"
    low, high = row[f"{metric}_min"], row[f"{metric}_max"]
    if low == high:
        return f" (each of {row['trials']} trials)"
    return f" (median of {row['trials']} trials, range {fmt_range(low, high, fmt)})"


def replication(runs: Runs) -> str:
    """Whether durable's acknowledgement could survive the loss of a broker in this plan."""
    s = runs.summaries
    if s.empty:
        return ""
    column = "replication_factor" if "replication_factor" in s else None
    factors = s[column] if column else pd.Series([None] * len(s), index=s.index)
    single = s[[is_missing(f) or float(f) <= 1 for f in factors]]
    if single.empty:
        return ""
    durable = single[single["mode"] == "durable"]
    scope = "every run" if len(single) == len(s) else f"{len(single)} of {len(s)} runs"
    who = f" ({len(durable)} of them durable)" if len(durable) and len(single) != len(s) else ""
    return (
        f"the run topic had replication factor 1 in {scope}{who}: there durable is not durable "
        "against the loss of that broker; its acknowledgement means one broker wrote the event, "
        "and a broker lost with its disk loses it"
    )


def spread(runs: Runs) -> str:
    """How much trials of one configuration disagreed: the noise floor of every comparison."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    repeated = table[table["trials"] >= 2]
    if repeated.empty:
        return (
            "one trial per configuration: the spread across trials is unknown, so small "
            "differences may be noise"
        )
    parts = []
    for metric, label in (("events_per_s", "throughput varied"), ("p99_ms", "p99")):
        relative = (repeated[f"{metric}_max"] - repeated[f"{metric}_min"]) / repeated[f"{metric}_median"]
        relative = relative.dropna()
        if relative.empty:
            continue
        worst = relative.idxmax()
        parts.append(f"{label} by at most {fmt_pct(relative[worst])} ({repeated.at[worst, 'configuration']})")
    if not parts:
        return "the runs recorded neither throughput nor p99, so there is no spread to show"
    return "across trials (max - min, relative to the median), " + " and ".join(parts)


def failed(runs: Runs) -> str:
    """Which cells produced no result, so a missing configuration is never silent."""
    total = len(runs.summaries) + len(runs.failed)
    if runs.failed.empty:
        return "the one run produced results" if total == 1 else f"all {total} runs produced results"
    cells = "; ".join(f"{r['run']} ({r['error']})" for _, r in runs.failed.iterrows())
    verb = "is" if len(runs.failed) == 1 else "are"
    return f"{len(runs.failed)} of {total} cells produced no result and {verb} left out: {cells}"
