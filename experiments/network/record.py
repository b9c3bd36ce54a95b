"""A run's `network` section (experiments/RESULTS.md): the round trips asked, those the
calibration measured on every proxied link, the mark of a run that missed them, and what
the proxy itself cost in CPU while the load ran."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from experiments.network.calibrate import calibrate
from experiments.network.layout import MISS_RULE, NetworkLayout, off_target
from experiments.network.proxy import LISTENERS, ProxyState
from experiments.rundir import PROXY, NetworkSection


def measured_links(state: ProxyState, samples: int | None = None) -> list[dict[str, Any]]:
    """Asked against measured for every route of the cluster's proxy."""
    links = []
    for measurement in calibrate(state, samples):
        route = measurement.route
        link = state.layout.link(route.link)
        measured = measurement.measured_ms
        links.append({
            "node_id": route.node_id,
            "listener": route.listener,
            "link": route.link,
            "proxy_port": route.listen_port,
            "node_port": route.upstream_port,
            "asked_rtt_ms": link.rtt_ms,
            "jitter_ms": link.jitter_ms,
            "measured_rtt_ms": round(measured, 3),
            # What the cluster's start measured the proxy itself to add here, taken off the toxics.
            "excess_us": state.excess_us.get(route.name, 0),
            "proxied_ms": round(measurement.proxied_ms, 3),
            "direct_ms": round(measurement.direct_ms, 3),
            "min_ms": round(measurement.min_ms, 3),
            "max_ms": round(measurement.max_ms, 3),
            "samples": measurement.samples,
            "off_target": off_target(link.rtt_ms, measured),
        })
    return links


def network_section(asked: NetworkLayout, state: ProxyState | None,
                    samples: int | None = None) -> NetworkSection:
    """The section as written before the load (`add_proxy_cpu` completes it after).

    Without a proxy (loopback) nothing is measured: the section says so, with every
    round trip asked as 0."""
    started = time.perf_counter()
    links = measured_links(state, samples) if state is not None else []
    reasons = [f"node {link['node_id']} {link['listener']}: measured {link['measured_rtt_ms']:.2f} ms, "
               f"asked {link['asked_rtt_ms']} ms" for link in links if link["off_target"]]
    by_listener = {listener: [link["measured_rtt_ms"] for link in links if link["listener"] == listener]
                   for listener in LISTENERS}
    return {
        "profile": asked.profile,
        "proxied": state is not None,
        "asked": {"client": asdict(asked.client), "broker": asdict(asked.broker)},
        "toxics": {"client": asked.client.toxics(), "broker": asked.broker.toxics()} if state else None,
        # Median over the nodes, per listener: the figure a table or a plot shows.
        "measured_rtt_ms": {listener: round(statistics.median(values), 3)
                            for listener, values in by_listener.items() if values} or None,
        "links": links,
        "missed": bool(reasons),
        "miss_reasons": reasons,
        "miss_rule": MISS_RULE,
        "proxy": {"impl": "toxiproxy", "version": state.version, "pid": state.pid} if state else None,
        "calibration_s": round(time.perf_counter() - started, 3),
        "proxy_cpu_percent": None,
        "proxy_cpu_us_per_event": None,
    }


def add_proxy_cpu(section: NetworkSection, results: Mapping[str, Any], duration_s: float) -> None:
    """The proxy's mean CPU over the measured window (100 = one core), as the run's sampler
    measured it (`results.cpu_percent.proxy`), and that CPU per accepted event."""
    mean = (results.get("cpu_percent") or {}).get(PROXY)
    if not section.get("proxied") or mean is None:
        return
    events = results.get("events_accepted") or 0
    section["proxy_cpu_percent"] = mean
    section["proxy_cpu_us_per_event"] = round(mean / 100 * duration_s / events * 1e6, 2) if events else None
