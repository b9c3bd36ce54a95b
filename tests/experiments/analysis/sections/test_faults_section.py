"""The Faults section (issue 8 item 5): loss per mode and fault, unavailability, timelines,
and the replication-factor-1 warning; plans without faults keep their shape."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from experiments.analysis import Runs, load_runs
from experiments.analysis.sections import faults

from ..conftest import FAULTS_PLAN, read_summary

KILLED_FF = (
    "003-mode=fire-and-forget_fault=service-kill-t1",
    "007-mode=fire-and-forget_fault=service-kill-t2",
)


def test_fault_table_medians_and_ranges(fault_runs: Runs) -> None:
    table = faults.fault_table(fault_runs).set_index("configuration")
    lost = [read_summary(FAULTS_PLAN, n)["audit"]["lost"] for n in KILLED_FF]
    row = table.loc["fire-and-forget, fault=service-kill"]
    assert row["lost_median"] == statistics.median(lost)
    assert (row["lost_min"], row["lost_max"]) == (min(lost), max(lost))
    assert table.loc["durable, fault=service-kill", "lost_max"] == 0
    shown = faults.table(fault_runs).set_index("configuration")
    assert shown.loc["fire-and-forget, fault=service-kill", "acknowledged and lost (median, min-max)"] == (
        "28 (21-34)"
    )
    assert shown.loc["durable, fault=broker-pause", "duplicates (median, min-max)"] == "2 (0-3)"
    assert shown.loc[
        "durable, fault=service-kill", "unavailable after the fault start (median, min-max)"
    ] == ("2.61 s (2.60 s-2.61 s)")
    assert list(shown["fault"]) == ["service-kill", "broker-pause", "service-kill", "broker-pause"]


def test_fault_takeaways_word_for_word(fault_runs: Runs) -> None:
    assert faults.takeaway(fault_runs) == (
        "fire-and-forget acknowledged 28 events it never delivered when the service was killed "
        "(median of 2 trials, range 21-34); durable lost none; first successful answer after the "
        "fault start: 2.61 s (durable), 2.60 s (fire-and-forget); no mode lost an acknowledged "
        "event when the broker was paused; first successful answer after the fault start: 2.10 s "
        "(durable), 0.008 s (fire-and-forget)"
    )
    assert faults.replication_takeaway(fault_runs) == (
        "the run topic had replication factor 1 in every run: there durable is not durable against "
        "the loss of that broker; its acknowledgement means one broker wrote the event, and a "
        "broker lost with its disk loses it"
    )


def test_a_fault_that_was_not_injected_is_said(tmp_path: Path) -> None:
    for name in KILLED_FF:
        shutil.copytree(FAULTS_PLAN / name, tmp_path / name)
    summary = read_summary(tmp_path, KILLED_FF[1])
    summary["faults"]["injected"] = False
    summary["availability"]["first_ok_after_fault_s"] = None
    summary["availability"]["unavailable_s"] = None
    (tmp_path / KILLED_FF[1] / "summary.json").write_text(json.dumps(summary))
    text = faults.takeaway(load_runs(tmp_path))
    assert text.endswith(
        "; never answered again in 1 of 2 trials (fire-and-forget); the fault was NOT injected in "
        "1 of 2 trials (fire-and-forget)"
    )


def test_replicated_topics_drop_the_warning(tmp_path: Path) -> None:
    for name in KILLED_FF:
        shutil.copytree(FAULTS_PLAN / name, tmp_path / name)
        summary = read_summary(tmp_path, name)
        summary["params"].update(cluster_size=3, replication_factor=3, min_insync_replicas=2)
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    assert faults.replication_takeaway(load_runs(tmp_path)) == ""


def test_one_timeline_per_fault_kind(fault_runs: Runs, runs: Runs) -> None:
    figures = faults.timelines(fault_runs)
    assert [f.axes[0].get_title().split(" (")[0] for f in figures] == [
        "Fault: service-kill",
        "Fault: broker-pause",
    ]
    throughput, errors, p99 = figures[0].axes
    assert (throughput.get_ylabel(), errors.get_ylabel(), p99.get_ylabel()) == (
        "events accepted/s",
        "error answers/s",
        "p99 (ms, log scale)",
    )
    # The fault window [3 s, 5 s) is shaded on each panel.
    for axis in figures[0].axes:
        spans = [p.get_x() for p in axis.patches]
        assert 2.5 in spans
    labels = [t.get_text() for legend in figures[0].legends for t in legend.get_texts()]
    assert "fire-and-forget, fault=service-kill: transport" in labels
    assert faults.timelines(runs) == []
    assert not runs.has_faults and faults.takeaway(runs) == ""


def test_chained_fault_kinds_read_as_a_sequence() -> None:
    assert faults.fault_phrase("broker-pause+service-kill") == (
        "when the broker was paused and then the service was killed"
    )
    assert faults.fault_phrase("broker-restart") == "when the broker was restarted"


def test_a_loss_in_one_trial_is_said_although_the_median_is_zero(tmp_path: Path) -> None:
    """The faults plan lost 21,465 events in one trial of three leader kills (failover past
    message.timeout.ms) and none in the two others: 'no mode lost' would be false."""
    for name in KILLED_FF:
        shutil.copytree(FAULTS_PLAN / name, tmp_path / name)
    clean = read_summary(tmp_path, KILLED_FF[1])
    clean["audit"]["lost"] = 0
    clean["audit"]["lost_by_class"] = {"202": 0}
    (tmp_path / KILLED_FF[1] / "summary.json").write_text(json.dumps(clean))
    lossy = read_summary(tmp_path, KILLED_FF[0])["audit"]["lost"]
    runs = load_runs(tmp_path)
    row = faults.fault_table(runs).set_index("configuration").loc["fire-and-forget"]
    assert (row["lost_trials"], row["trials"], row["lost_median"]) == (1, 2, lossy / 2)
    text = faults.takeaway(runs)
    assert text.startswith(
        f"fire-and-forget acknowledged events it never delivered when the service was killed in 1 of "
        f"2 trials (up to {lossy}; median "
    )
    assert "no mode lost" not in text
