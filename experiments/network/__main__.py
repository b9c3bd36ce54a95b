"""`python -m experiments.network check|build|path|profiles|calibrate`: the latency proxy.

`calibrate` measures every proxied link of the running local cluster (started with
`python -m experiments.kafka up --network PROFILE`) and prints asked against measured.
"""

from __future__ import annotations

import argparse
import sys

from experiments.errors import LabError
from experiments.network.build import ProxyBuildError, ProxyUnavailable, binary_path, build, missing_prereqs
from experiments.network.layout import MISS_RULE, PROFILES
from experiments.network.record import measured_links


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.network", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="list missing build prerequisites (exit 1 if any)")
    build_cmd = sub.add_parser("build", help="build the pinned Toxiproxy unless it is cached")
    build_cmd.add_argument("--force", action="store_true", help="run go build even if it is cached")
    sub.add_parser("path", help="print where the binary is (built or not)")
    sub.add_parser("profiles", help="the named profiles' round trips")
    calibrate = sub.add_parser("calibrate", help="asked vs measured on the running local cluster")
    calibrate.add_argument("--samples", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "check":
        missing = missing_prereqs()
        for item in missing:
            print(f"missing: {item}")
        return 1 if missing else 0
    if args.command == "path":
        print(binary_path())
        return 0
    if args.command == "profiles":
        for name, links in PROFILES.items():
            print(f"{name:13} client {links['client']} ms, broker {links['broker']} ms")
        print("<N>ms         every link N ms")
        return 0
    if args.command == "calibrate":
        from experiments.kafka import LocalKafka

        state = LocalKafka().status()
        if state is None or state.network is None:
            print("no local cluster behind a proxy is running (python -m experiments.kafka up --network ...)",
                  file=sys.stderr)
            return 3
        try:
            links = measured_links(state.network, samples=args.samples)
        except LabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for link in links:
            mark = "  OFF TARGET" if link["off_target"] else ""
            print(f"node {link['node_id']} {link['listener']:11} asked {link['asked_rtt_ms']:>3} ms, "
                  f"measured {link['measured_rtt_ms']:.2f} ms (min {link['min_ms']:.2f}, "
                  f"max {link['max_ms']:.2f}){mark}")
        print(MISS_RULE)
        return 0
    try:
        result = build(force=args.force)
    except (ProxyUnavailable, ProxyBuildError) as exc:
        print(exc, file=sys.stderr)
        return 1
    state = f"built in {result.seconds:.1f} s" if result.built else "up to date"
    print(f"{result.binary} ({state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
