"""`python -m experiments.kafka up [--brokers N] [--network PROFILE]|down|status|jars`: drive the
project's local cluster.

`up` prints the bootstrap address on stdout (and nothing else), so
`export KAFKA_BOOTSTRAP_SERVERS=$(python -m experiments.kafka up)` works. `status` lists
every node with its pid, state and ports.
"""

from __future__ import annotations

import argparse
import sys

from experiments.errors import LabError
from experiments.kafka import BOOTSTRAP_ENV, LocalKafka, ensure_jars, ensure_kafka
from experiments.kafka.broker import default_home
from experiments.network import resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.kafka", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "jars"])
    parser.add_argument("--brokers", type=int, default=1,
                        help="nodes of the local cluster for `up` (combined broker+controller)")
    parser.add_argument("--network", default=None,
                        help="for `up`: every listener behind the latency proxy with this profile's round "
                             "trips (loopback | same-zone | cross-zone | cross-region | <N>ms; "
                             "experiments/network); default: keep what runs, else loopback")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    try:
        network = resolve(args.network) if args.network else None
        broker = LocalKafka(nodes=args.brokers, network=network)
        if args.command == "jars":
            print(ensure_jars(broker.cache_dir))
        elif args.command == "up":
            target = ensure_kafka(local=broker, timeout=args.timeout)
            print(target.bootstrap)
            if target.external:
                print(f"using the cluster in {BOOTSTRAP_ENV}; nothing started", file=sys.stderr)
            else:
                state = broker.status()
                pids = " ".join(str(p) for p in state.pids) if state else "?"
                print(f"kafka {target.kafka_version}, {args.brokers} node(s), pid {pids} ({broker.run_dir})",
                      file=sys.stderr)
        elif args.command == "down":
            stopped = broker.stop()
            print("stopped" if stopped else "not running", file=sys.stderr)
        else:
            state = broker.status()
            if state is None:
                print(f"not running (state under {default_home()})", file=sys.stderr)
                return 3
            print(state.bootstrap)
            print(f"kafka {state.kafka_version}, {len(state.nodes)} node(s), heap {state.heap} each, "
                  f"since {state.started_at}", file=sys.stderr)
            node_status = broker.node_status()
            for node in state.nodes:
                print(f"  node {node.node_id}: pid {node.pid} {node_status.get(node.node_id, '?')}, "
                      f"port {node.port}, controller port {node.controller_port}", file=sys.stderr)
            if state.network is not None:
                layout = state.network.layout
                links = ", ".join(f"{kind} {link.rtt_ms} ms (jitter +-{link.jitter_ms})"
                                  for kind, link in (("client", layout.client), ("broker", layout.broker)))
                print(f"  behind toxiproxy {state.network.version} (pid {state.network.pid}): "
                      f"{layout.profile}, {links}", file=sys.stderr)
                for route in state.network.routes:
                    print(f"    node {route.node_id} {route.listener}: proxy port {route.listen_port} -> "
                          f"{route.upstream_port}", file=sys.stderr)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.command == "up":
            print(f"(or point {BOOTSTRAP_ENV} at an existing cluster)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
