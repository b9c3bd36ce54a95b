"""The network between the parts of a run, as asked: a round trip (and jitter) per kind of
link, the named profiles that stand for common deployments, and the toxics that make
each round trip on Toxiproxy. Pure: nothing here opens a socket.

Two kinds of link (experiments/network/proxy.py gives each node one proxy per listener):
- `client`: the service (and every other client of the run) <-> each broker;
- `broker`: broker <-> broker, i.e. a follower's fetches from the leader (replication)
  and the controller quorum (each node's controller listener).

The delay is the proxy's `latency_us` toxic (experiments/network/proxy/main.go: Toxiproxy's
server with a microsecond latency toxic added), drawn per chunk uniformly from
[latency - jitter, latency + jitter] microseconds, so:
- a round trip is asked in whole milliseconds (the proxy's own hop, about 0.15 ms here, is
  the floor a smaller ask could not be told apart from) and split half each way;
- what the proxy itself adds on a link (its hop, and its sleep's lateness) is measured
  once the cluster is up and taken off the toxics (`calibrate.correct`), so the round
  trip a client gets is the one asked;
- the jitter of a direction may not exceed its latency (the draw would be clamped at 0
  and the mean would drift up).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from experiments.errors import LabError

LINK_KINDS = ("client", "broker")
LOOPBACK = "loopback"
# Named deployments; round trips in whole ms, no jitter (a whole-ms jitter would swamp a
# 1 ms link). Sources for the figures:
# - within one zone a round trip is 0.1-0.3 ms; the smallest AWS pair measured was
#   0.25 ms (best of 50 pings, xkyle.com "Measuring AWS Region and AZ Latency"). Below
#   the proxy's own hop: `same-zone` is every link through its proxy with nothing
#   added, i.e. the userspace hop alone (calibration records what it costs here).
# - between zones of a region: under 1 ms at the 95th percentile (Google's zone
#   requirement, cloud.google.com/distributed-cloud/.../zone-requirements); AWS pairs
#   measured 0.25-3.37 ms (xkyle.com, above), typically 0.5-1.5 ms (flashgrid.io
#   "Latencies between AWS availability zones", 2023). `cross-zone`: 1 ms everywhere.
# - between regions: 10-30 ms for neighbouring regions, 60-80 ms across a continent
#   (ping heat maps of AWS and GCP regions, S. Agarwal, "Public cloud inter-region network
#   latency as heat-maps", 2018; issue 21 quotes 20-80 ms). `cross-region`: the service in
#   a neighbouring region (20 ms) from a cluster spread over zones (1 ms between brokers).
# "<N>ms" puts N ms on every link (a cluster stretched that far), the network plan's grid.
PROFILES: dict[str, dict[str, int]] = {
    "loopback": {"client": 0, "broker": 0},
    "same-zone": {"client": 0, "broker": 0},
    "cross-zone": {"client": 1, "broker": 1},
    "cross-region": {"client": 20, "broker": 1},
}
_EVERY_LINK = re.compile(r"^(\d+)ms$")
# The calibration's rule (like the load generator's OVERLOAD_RULE): a link whose measured
# round trip is off the asked one by more than this is marked.
MISS_FRACTION = 0.10
MISS_FLOOR_MS = 0.2
MISS_RULE = (f"a link is off target when its measured round trip differs from the asked one by more "
             f"than {MISS_FRACTION:.0%} of it or {MISS_FLOOR_MS} ms, whichever is larger")


class NetworkError(LabError):
    """A network layout that cannot be applied (bad value, external cluster, no proxy)."""


@dataclass(frozen=True)
class Link:
    """One kind of link: its round trip and the jitter of each direction, whole ms."""

    rtt_ms: int = 0
    jitter_ms: int = 0  # per direction: each chunk's delay varies uniformly by +- this

    def toxics(self, excess_us: int = 0) -> dict[str, dict[str, int]]:
        """The proxy's `latency_us` attributes per stream (upstream = towards the broker):
        half the round trip each way, less `excess_us`, what calibration measured the proxy
        itself to add on this link (`calibrate.correct`)."""
        total = max(0, self.rtt_ms * 1000 - excess_us)
        upstream = (total + 1) // 2
        jitter = self.jitter_ms * 1000
        return {"upstream": {"latency_us": upstream, "jitter_us": jitter},
                "downstream": {"latency_us": total - upstream, "jitter_us": jitter}}


@dataclass(frozen=True)
class NetworkLayout:
    """What a run asks of the network: a profile name and the link it resolves to per kind.
    `proxied` False is the loopback layout: no proxy at all, today's cluster."""

    profile: str = LOOPBACK
    client: Link = Link()
    broker: Link = Link()
    proxied: bool = False

    def link(self, kind: str) -> Link:
        if kind not in LINK_KINDS:
            raise NetworkError(f"link kind {kind!r}: expected one of {LINK_KINDS}")
        return self.client if kind == "client" else self.broker

    def same_network(self, other: NetworkLayout) -> bool:
        """The same links behind the same proxies, whatever the profile was called."""
        return (self.client, self.broker, self.proxied) == (other.client, other.broker, other.proxied)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkLayout:
        return cls(profile=data["profile"], client=Link(**data["client"]), broker=Link(**data["broker"]),
                   proxied=data["proxied"])


LOOPBACK_LAYOUT = NetworkLayout()


def profile_links(name: str) -> dict[str, int]:
    """Round trip per link kind of a profile or of "<N>ms"."""
    if name in PROFILES:
        return dict(PROFILES[name])
    match = _EVERY_LINK.match(name)
    if match:
        return {kind: int(match[1]) for kind in LINK_KINDS}
    raise NetworkError(f"network={name!r}: expected one of {sorted(PROFILES)} or '<N>ms' (every link "
                       f"N ms, a whole number)")


def whole_ms(name: str, value: float) -> int:
    """A non-negative whole number of milliseconds, or a NetworkError saying why not."""
    if value < 0 or float(value) != int(value):
        raise NetworkError(f"{name}={value}: a whole number of milliseconds >= 0 (below that the "
                           f"proxy's own hop of about 0.15 ms could not be told apart)")
    return int(value)


def resolve(profile: str, client_rtt_ms: float | None = None, client_jitter_ms: float | None = None,
            broker_rtt_ms: float | None = None, broker_jitter_ms: float | None = None) -> NetworkLayout:
    """The layout of a profile with a link's own values over it (None: the profile's).

    Loopback with nothing overridden is the unproxied cluster; anything else puts every
    link of every node behind its proxy, so links compare on the same footing (each pays
    the proxy's hop, which calibration measures)."""
    rtts = profile_links(profile)
    overrides = {"client": (client_rtt_ms, client_jitter_ms), "broker": (broker_rtt_ms, broker_jitter_ms)}
    links = {}
    for kind, (rtt, jitter) in overrides.items():
        link = Link(rtt_ms=whole_ms(f"network_{kind}_rtt_ms", rtt) if rtt is not None else rtts[kind],
                    jitter_ms=whole_ms(f"network_{kind}_jitter_ms", jitter) if jitter is not None else 0)
        _check_jitter(kind, link)
        links[kind] = link
    proxied = profile != LOOPBACK or any(v is not None for pair in overrides.values() for v in pair)
    return NetworkLayout(profile=profile, client=links["client"], broker=links["broker"], proxied=proxied)


def _check_jitter(kind: str, link: Link) -> None:
    shortest_us = min(t["latency_us"] for t in link.toxics().values())
    if link.jitter_ms * 1000 > shortest_us:
        raise NetworkError(
            f"network_{kind}_jitter_ms={link.jitter_ms} on a {link.rtt_ms} ms round trip: a direction's "
            f"jitter may not exceed its latency ({shortest_us / 1000:g} ms here; a draw below 0 would be "
            f"clamped and the mean would drift up): ask a round trip of at least {2 * link.jitter_ms} ms"
        )


def off_target(asked_ms: float, measured_ms: float) -> bool:
    """MISS_RULE for one link."""
    return abs(measured_ms - asked_ms) > max(MISS_FRACTION * asked_ms, MISS_FLOOR_MS)
