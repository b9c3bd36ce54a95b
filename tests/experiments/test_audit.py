"""The delivery audit against the real broker: exact counts for every kind of discrepancy."""

from __future__ import annotations

import csv
import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer

from experiments.audit import AuditError, audit_delivery, read_acks, read_acks_by_class, reconcile


def produce(bootstrap: str, topic: str, keys: list[str | None]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for key in keys:
        producer.produce(topic, key=key.encode() if key is not None else None,
                         value=b'{"name": "e"}', on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert failures == []


def write_acks(path: Path, ids: list[str]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["event_id", "t_ack_s"])
        writer.writerows((event_id, f"{i / 1000:.6f}") for i, event_id in enumerate(ids))
    return path


def new_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


@pytest.mark.kafka
def test_every_event_delivered_reports_zero_lost(bootstrap: str, kafka_topic: str,
                                                  tmp_path: Path) -> None:
    ids = new_ids(500)
    produce(bootstrap, kafka_topic, list(ids))
    audit = audit_delivery(bootstrap, kafka_topic, write_acks(tmp_path / "acks.csv", ids),
                           out_dir=tmp_path)
    counts = {k: audit[k] for k in ("acknowledged", "present", "lost", "unacknowledged",
                                    "duplicates")}
    assert counts == {"acknowledged": 500, "present": 500, "lost": 0, "unacknowledged": 0,
                      "duplicates": 0}
    assert json.loads((tmp_path / "audit.json").read_text())["lost"] == 0


@pytest.mark.kafka
def test_withheld_unacknowledged_and_duplicated_events_are_counted_exactly(
        bootstrap: str, kafka_topic: str, tmp_path: Path) -> None:
    delivered = new_ids(300)
    withheld = new_ids(17)  # acknowledged, never produced: lost
    unacked = new_ids(9)  # produced, never acknowledged
    twice, thrice = delivered[:5], delivered[5:8]  # 5 + 2*3 = 11 extra copies
    produce(bootstrap, kafka_topic,
            [*delivered, *unacked, *twice, *thrice, *thrice, None, None])
    acks = write_acks(tmp_path / "acks.csv", [*delivered, *withheld, delivered[0]])

    audit = audit_delivery(bootstrap, kafka_topic, acks)
    assert audit["acknowledged"] == 317
    assert audit["present"] == 300
    assert audit["lost"] == 17
    assert audit["unacknowledged"] == 9
    assert audit["duplicates"] == 11
    assert audit["unkeyed_records"] == 2
    assert audit["records"] == 300 + 9 + 11 + 2
    assert set(audit["lost_examples"]) <= set(withheld) and len(audit["lost_examples"]) == 10
    assert audit["lost_ack_s"] == {"first": 0.3, "last": 0.316}


@pytest.mark.kafka
def test_deleting_records_is_detected(bootstrap: str, kafka_topic: str,
                                      tmp_path: Path) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    ids = new_ids(200)
    produce(bootstrap, kafka_topic, ids)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Delete the first 40 records of the only partition: acknowledged, now gone.
    done = admin.delete_records([TopicPartition(kafka_topic, 0, 40)])
    for future in done.values():
        future.result(timeout=30)
    audit = audit_delivery(bootstrap, kafka_topic, write_acks(tmp_path / "a.csv", ids))
    assert (audit["lost"], audit["present"], audit["unacknowledged"]) == (40, 160, 0)


def test_reconcile_arithmetic() -> None:
    acks = {"a": 0.1, "b": 0.2, "c": 0.3}
    audit = reconcile(acks, Counter({"a": 1, "b": 3, "x": 2}))
    assert (audit["present"], audit["lost"], audit["unacknowledged"], audit["duplicates"]) == (
        2, 1, 1, 3)
    assert audit["lost_examples"] == ["c"]


def test_acks_file_must_have_the_contract_header(tmp_path: Path) -> None:
    bad = tmp_path / "acks.csv"
    bad.write_text("id,time\nx,1\n")
    with pytest.raises(AuditError):
        read_acks(bad)
    with pytest.raises(AuditError):
        read_acks(tmp_path / "missing.csv")


def test_loss_is_counted_by_the_class_of_the_acknowledging_answer(tmp_path: Path) -> None:
    acks_csv = tmp_path / "acks.csv"
    acks_csv.write_text(
        "event_id,t_ack_s,status\n"
        "d1,0.1,200\nd2,0.2,200\nf1,0.3,202\nf2,0.4,202\nf3,0.5,202\n"
        "f1,0.9,200\n"  # a later answer for the same id does not change its class
    )
    acks, classes = read_acks_by_class(acks_csv)
    assert classes == {"d1": "200", "d2": "200", "f1": "202", "f2": "202", "f3": "202"}
    audit = reconcile(acks, Counter({"d1": 1, "d2": 1, "f1": 1}), classes)
    assert audit["lost"] == 2
    assert audit["acknowledged_by_class"] == {"200": 2, "202": 3}
    assert audit["lost_by_class"] == {"200": 0, "202": 2}


def test_an_acks_file_without_status_counts_one_unknown_class(tmp_path: Path) -> None:
    acks, classes = read_acks_by_class(write_acks(tmp_path / "acks.csv", ["a", "b", "c"]))
    audit = reconcile(acks, Counter({"a": 1}), classes)
    assert audit["acknowledged_by_class"] == {"unknown": 3}
    assert audit["lost_by_class"] == {"unknown": 2}


@pytest.mark.kafka
@pytest.mark.parametrize("partitions", [1, 3])
def test_the_reader_stops_at_the_end_offsets_it_saw_first_and_counts_every_partition(
        bootstrap: str, partitions: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records past the end offsets seen when reading began (written while it reads) are not
    the run's: the reader passes none of them on, on one partition and on several; from
    `start_offsets` it skips each partition's head."""
    from confluent_kafka import Consumer

    from experiments.kafka import create_topic, read_topic_batches, topics, unique_topic

    topic = create_topic(bootstrap, unique_topic("reader"), partitions=partitions)
    keys = new_ids(300)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i, key in enumerate(keys):
        producer.produce(topic, key=key.encode(), value=b"{}", partition=i % partitions)
    assert producer.flush(30) == 0
    per_partition = 300 // partitions
    late = 7  # the newest records of each partition play those written after reading began

    class EarlierEnds(Consumer):  # type: ignore[misc]
        def get_watermark_offsets(self, *args: object, **kwargs: object) -> tuple[int, int]:
            low, high = super().get_watermark_offsets(*args, **kwargs)
            return low, high - late

    monkeypatch.setattr(topics, "Consumer", EarlierEnds)
    read = [m for batch in read_topic_batches(bootstrap, topic, timeout=30) for m in batch]
    assert len(read) == partitions * (per_partition - late)
    assert all(m.offset() < per_partition - late for m in read)
    assert {m.key().decode() for m in read} == {k for i, k in enumerate(keys)
                                                 if i // partitions < per_partition - late}
    skipped = [m for batch in read_topic_batches(bootstrap, topic, timeout=30,
                                                 start_offsets={p: 10 for p in range(partitions)})
               for m in batch]
    assert len(skipped) == partitions * (per_partition - late - 10)
