"""The Publisher: the process's one producer, and its delivery reports handed to the loop.

By default (`loop`) a task on the event loop calls `producer.poll(0)`, so reports are
served on the loop thread without a GIL hand-off per report; while requests wait for their
reports and none is ready, it waits in a blocking `poll()` on a helper thread, which
returns the moment a report arrives (one hand-off per wait, not per report). The `thread` bridge follows
confluent-kafka-python's classic asyncio example: a dedicated thread calls
`producer.poll()` and results reach the event loop through `loop.call_soon_threadsafe`
(see `DeliveryBridge` for the measurements). Two refinements keep the thread cheap: the
callbacks of one `poll()` call are handed over in one `call_soon_threadsafe` (one wake-up,
not one per event), and a batch request waits on one future that the poll thread
resolves when the batch's last delivery report arrives (a count-down).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from service.errors import ConfigError, NotReady
from service.events import Record
from service.kafka.admission import Admission
from service.kafka.delivery import (
    TIMED_OUT_OUTCOME,
    BatchCountdown,
    Deadlines,
    DeliveryBridge,
    DeliveryReports,
    Outcome,
    outcome_of,
    resolve_all,
)
from service.kafka.errors import QUEUE_FULL, from_produce_exception
from service.kafka.topic import readiness
from service.metrics import LatencyTally, Metrics
from service.modes import ProducerMode

log = logging.getLogger("service.kafka")
_POLL_S = 0.1
_GAUGE_EVERY_S = 0.5
# Extra wait past message.timeout.ms before a durable request gives up on its report:
# librdkafka promises a report within the timeout, this only guards against a lost one.
_REPORT_GRACE_S = 5.0
# When a poll served nothing, the `loop` bridge waits before the next one:
# - no request waits: a 2 ms sleep, which bounds the delivery latency the counters see at
#   500 idle wake-ups per second;
# - single-event requests wait: a blocking `poll()` on a helper thread, which
#   returns when the next report arrives. A timer (uvloop's resolution is 1 ms) delayed
#   every durable answer by up to 2 ms: durable `POST /` at 50 connections, 4 interleaved
#   rounds, 6,083 req/s against 5,326 with a 1 ms sleep, p50 7.9 against 9.2 ms (the Rust
#   comparator 7,953 and 6.2 ms). Its bound only sets how soon the task notices a stop;
# - a batch request waits: a 1 ms sleep. Its 100s of reports arrive in a stream that
#   `poll(0)` finds; serving them on the helper thread made it contend with the busy loop
#   for the GIL (durable batches of 100: 0.83-0.98x of the timer in 10 paired rounds).
_LOOP_IDLE_S = 0.002
_LOOP_BLOCKING_POLL_S = 0.05
_LOOP_WAITING_S = 0.001
# How often requests still waiting past their report deadline are answered (Deadlines).
_SWEEP_S = 0.5
# Kafka record headers added to every record of one request (e.g. who published it).
RecordHeaders = list[tuple[str, bytes]]


class Publisher:
    """The process's one producer and the bridge between its thread and the event loop."""

    # No defaults for the tunables: Settings (service/settings.py) is their one source.
    def __init__(self, config: dict[str, Any], topic: str, mode: ProducerMode,
                 metrics: Metrics, *, max_in_flight: int, retry_after: int,
                 shed_delay_s: float, bridge: DeliveryBridge,
                 reports: DeliveryReports) -> None:
        if str(config.get("delivery.report.only.error", "false")).lower() in ("true", "1"):
            reports = DeliveryReports.ERRORS  # set through the producer config instead
        if reports is DeliveryReports.ERRORS:
            if mode is ProducerMode.DURABLE:
                raise ConfigError("delivery.report.only.error needs mode fire-and-forget: a "
                                  "durable request waits for its own event's delivery report")
            config = {**config, "delivery.report.only.error": True}
        self.config = config
        self.reports = reports
        self.bridge = bridge
        self.topic = topic
        self.mode = mode
        self.retry_after = retry_after
        self.admission = Admission(
            lambda: self.in_flight, max_in_flight,
            int(config.get("queue.buffering.max.messages", 100_000)), retry_after,
            shed_delay_s, self._count_rejected,
        )
        self.max_message_bytes = int(config.get("message.max.bytes", 1_000_000))
        self.report_wait_s = int(config.get("message.timeout.ms", 300_000)) / 1000 + _REPORT_GRACE_S
        self.deadlines = Deadlines(self.report_wait_s)
        self._sweeper: asyncio.TimerHandle | None = None
        self.fatal_error: str | None = None
        self._metrics = metrics
        self._accepted = metrics.events_accepted.labels(mode=mode.value)
        self._delivered = metrics.events_delivered.labels(mode=mode.value)
        self._latency = LatencyTally(metrics.delivery_latency.labels(mode=mode.value))
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._waiter: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        # Written by the loop thread only / by the poll thread only: no lock needed.
        self._produced = 0
        self._reported = 0
        self._batches_waiting = 0  # durable batch requests awaiting their reports
        self._singles_waiting = 0  # durable single-event requests awaiting theirs
        # Poll-thread state, handed over after each poll() call.
        self._ready: list[tuple[asyncio.Future[Any], Any]] = []
        self._delivered_n = 0
        self._failures: collections.Counter[str] = collections.Counter()
        self._failed_sample: list[str] = []
        # Errors-only reports: the failed events seen, and the delivered count last added.
        self._failed_n = 0
        self._delivered_counted = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        conf = {**self.config, "error_cb": self._on_error,
                "logger": logging.getLogger("service.librdkafka")}
        try:
            self._producer = Producer(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid producer configuration: {exc}") from exc
        self._loop = loop
        self._sweeper = loop.call_later(_SWEEP_S, self._sweep)
        if self.bridge is DeliveryBridge.LOOP:
            self._waiter = ThreadPoolExecutor(1, thread_name_prefix="kafka-poll-wait")
            self._poll_task = loop.create_task(self._poll_on_loop(), name="kafka-poll")
            return
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    async def aclose(self, flush_timeout: float) -> int:
        """Stop polling, then flush for up to `flush_timeout` s; events left undelivered."""
        if self._producer is None:
            return 0
        self._stop.set()
        if self._poll_task is not None:
            # Reports must not be served on two threads at once: the flush serves them next.
            await self._poll_task
        if self._waiter is not None:
            self._waiter.shutdown()
        try:
            return await asyncio.to_thread(self._flush, flush_timeout)
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()

    def _sweep(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self.deadlines.sweep(loop.time())
        self._sweeper = loop.call_later(_SWEEP_S, self._sweep)

    def _flush(self, flush_timeout: float) -> int:
        if self._thread is not None:
            self._thread.join()
        remaining = int(self.producer.flush(flush_timeout))
        self._hand_over()
        self._update_gauges()
        return remaining

    @property
    def in_flight(self) -> int:
        if self.reports is DeliveryReports.ERRORS:
            # Successes are never reported: what librdkafka still holds is what is in flight.
            return len(self._producer) if self._producer is not None else 0
        return self._produced - self._reported

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise NotReady("the producer is not started")
        return self._producer

    # -- poll thread (or task) -----------------------------------------------------------
    async def _poll_on_loop(self) -> None:
        """The `loop` bridge: reports served on the loop thread, no GIL hand-off per report
        (while single-event requests wait, one blocking poll at a time on the helper)."""
        producer = self.producer
        loop = asyncio.get_running_loop()
        next_gauges = 0.0
        while not self._stop.is_set():
            served = producer.poll(0)
            self._hand_over(on_loop=True)
            now = time.monotonic()
            if now >= next_gauges:
                self._update_gauges()
                next_gauges = now + _GAUGE_EVERY_S
            if served:
                await asyncio.sleep(0)
            elif self._singles_waiting and not self._batches_waiting:
                # Reports are still served by one thread at a time: this task waits for it.
                # Only for single events: a finished batch's deadline stays queued until the
                # next sweep, and a blocking poll started then served the next batches'
                # reports on the helper thread (GIL hand-offs, 5% of a durable batch load's
                # samples, py-spy).
                await loop.run_in_executor(self._waiter, producer.poll, _LOOP_BLOCKING_POLL_S)
                self._hand_over(on_loop=True)
            else:
                await asyncio.sleep(_LOOP_WAITING_S if self.deadlines else _LOOP_IDLE_S)

    def _poll_loop(self) -> None:
        producer = self.producer
        next_gauges = 0.0
        while not self._stop.is_set():
            producer.poll(_POLL_S)
            self._hand_over()
            now = time.monotonic()
            if now >= next_gauges:
                self._update_gauges()
                next_gauges = now + _GAUGE_EVERY_S

    def _account(self, err: KafkaError | None, msg: Message) -> None:
        """Every delivery report passes here (also the fire-and-forget callback itself)."""
        self._reported += 1
        if err is None:
            self._delivered_n += 1
            latency = msg.latency()
            if latency is not None:
                self._latency.add(latency)
        else:
            self._failed_n += 1
            self._failures[err.name()] += 1
            if len(self._failed_sample) < 5:
                key = msg.key()
                self._failed_sample.append(key.decode() if isinstance(key, bytes) else str(key))

    def _on_single(self, future: asyncio.Future[Outcome], err: KafkaError | None,
                   msg: Message) -> None:
        self._account(err, msg)
        self._ready.append((future, outcome_of(err, msg)))

    def _complete(self, future: asyncio.Future[Any], result: Any) -> None:
        """Poll thread: queue a result for the loop; handed over after this poll() call."""
        self._ready.append((future, result))

    def _hand_over(self, on_loop: bool = False) -> None:
        """Resolve the futures whose reports arrived; from another thread through the loop.

        On the loop thread itself (`loop` bridge) resolve directly: `call_soon_threadsafe`
        would cost a wake-up write per poll for nothing.
        """
        if self._ready:
            ready, self._ready = self._ready, []
            loop = self._loop
            if on_loop:
                resolve_all(ready)
            elif loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(resolve_all, ready)
        if self._delivered_n:
            # Latencies first: a scrape never sees more deliveries than latencies.
            self._latency.flush()
            self._delivered.inc(self._delivered_n)
            self._delivered_n = 0
        if self._failures:
            failures, self._failures = self._failures, collections.Counter()
            sample, self._failed_sample = self._failed_sample, []
            for reason, count in failures.items():
                self._metrics.events_failed.labels(mode=self.mode.value, reason=reason).inc(count)
            # Fire-and-forget clients never see these; the log and the counter are the record.
            log.warning("events failed delivery", extra={
                "failed": dict(failures), "mode": self.mode.value, "sample_event_ids": sample})

    def _update_gauges(self) -> None:
        if self._producer is not None:
            self._metrics.queue_depth.set(len(self._producer))
            if self.reports is DeliveryReports.ERRORS:
                self._count_unreported_deliveries(len(self._producer))
        self._metrics.in_flight.set(self.in_flight)

    def _count_unreported_deliveries(self, held: int) -> None:
        """Errors-only reports: every event produced and neither failed nor still held was
        delivered. Exact once the queue drains; between, a failure being reported can make
        the difference dip by one, so the counter only ever moves up."""
        delivered = self._produced - self._failed_n - held
        if delivered > self._delivered_counted:
            self._delivered.inc(delivered - self._delivered_counted)
            self._delivered_counted = delivered

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal_error = f"{err.name()}: {err.str()}"
            log.critical("fatal producer error", extra={"kafka_error": err.name(),
                                                        "detail": err.str()})
        else:
            log.warning("kafka client error", extra={"kafka_error": err.name(),
                                                     "detail": err.str()})

    # -- event loop side ---------------------------------------------------------------
    def check_ready(self, timeout: float) -> dict[str, Any]:
        """Blocking: a metadata round trip through the producer's own connections."""
        if self.fatal_error is not None:
            return {"ready": False, "reason": f"producer failed: {self.fatal_error}"}
        return readiness(self.producer, self.topic, timeout)

    def _count_rejected(self, reason: str, count: int) -> None:
        self._metrics.events_rejected.labels(mode=self.mode.value, reason=reason).inc(count)

    def has_room(self, count: int) -> bool:
        """Room for `count` more events now; the routes skip `wait_for_room` when there is."""
        return self.admission.fits(count)

    async def wait_for_room(self, count: int | None = None) -> None:
        """See `Admission.wait`: a short wait for room, then 503."""
        await self.admission.wait(count)

    def _admit(self, count: int) -> None:
        if self.fatal_error is not None:
            self._count_rejected("fatal", count)
            raise NotReady(f"the producer failed: {self.fatal_error}", reason="fatal")
        self.admission.check(count)

    def _produce_failed(self, exc: Exception, count: int) -> Exception:
        self._count_rejected(QUEUE_FULL if isinstance(exc, BufferError) else "produce_error", count)
        return from_produce_exception(exc, self.retry_after)

    def publish_nowait(self, record: Record, headers: RecordHeaders | None = None) -> None:
        """Fire-and-forget: returns once librdkafka holds the event."""
        self._admit(1)
        try:
            if headers:
                self.producer.produce(self.topic, record.value, record.event_id,
                                      on_delivery=self._account, headers=headers)
            else:
                self.producer.produce(self.topic, record.value, record.event_id,
                                      on_delivery=self._account)
        except (BufferError, KafkaException) as exc:
            raise self._produce_failed(exc, 1) from None
        self._produced += 1
        self._accepted.inc()

    async def publish(self, record: Record, headers: RecordHeaders | None = None) -> Outcome:
        """Durable: returns the broker's answer for this one event."""
        self._admit(1)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        extra = {"headers": headers} if headers else {}
        try:
            self.producer.produce(self.topic, record.value, record.event_id,
                                  on_delivery=partial(self._on_single, future), **extra)
        except (BufferError, KafkaException) as exc:
            raise self._produce_failed(exc, 1) from None
        self._produced += 1
        self._accepted.inc()
        self.deadlines.add(loop.time(), future)
        self._singles_waiting += 1
        try:
            return await future
        finally:
            self._singles_waiting -= 1

    def publish_batch_nowait(self, records: list[Record],
                             headers: RecordHeaders | None = None) -> int:
        """Fire-and-forget batch: how many events (from the front) librdkafka accepted."""
        self._admit(len(records))
        produce, topic, callback = self.producer.produce, self.topic, self._account
        extra = {"headers": headers} if headers else {}
        accepted = 0
        try:
            for record in records:
                produce(topic, record.value, record.event_id, on_delivery=callback, **extra)
                accepted += 1
        except (BufferError, KafkaException) as exc:
            if accepted == 0:
                raise self._produce_failed(exc, len(records)) from None
            self._produce_failed(exc, len(records) - accepted)
        finally:
            self._produced += accepted
            self._accepted.inc(accepted)
        return accepted

    async def publish_batch(self, records: list[Record],
                            headers: RecordHeaders | None = None) -> list[Outcome]:
        """Durable batch: one future for the whole request, resolved by a count-down."""
        self._admit(len(records))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Outcome | None]] = loop.create_future()
        batch = BatchCountdown(len(records), future, self._account, self._complete)
        produce, topic = self.producer.produce, self.topic
        extra = {"headers": headers} if headers else {}
        produced = 0
        try:
            for i, record in enumerate(records):
                produce(topic, record.value, record.event_id,
                        on_delivery=partial(batch.on_delivery, i), **extra)
                produced += 1
        except (BufferError, KafkaException) as exc:
            if produced == 0:
                raise self._produce_failed(exc, len(records)) from None
            self._produce_failed(exc, len(records) - produced)
            batch.settle_unproduced(produced)
        finally:
            self._produced += produced
            self._accepted.inc(produced)
        self.deadlines.add(loop.time(), future, batch.expire)
        self._batches_waiting += 1
        try:
            outcomes = await future
        finally:
            self._batches_waiting -= 1
        return [o if o is not None else TIMED_OUT_OUTCOME for o in outcomes]
