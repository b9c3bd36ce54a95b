"""`python -m experiments.kafka up|down|status|jars`: drive the project's local broker.

`up` prints the bootstrap address on stdout (and nothing else), so
`export KAFKA_BOOTSTRAP_SERVERS=$(python -m experiments.kafka up)` works.
"""

from __future__ import annotations

import argparse
import sys

from experiments.errors import LabError
from experiments.kafka import BOOTSTRAP_ENV, LocalKafka, ensure_jars, ensure_kafka
from experiments.kafka.broker import default_home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.kafka", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "jars"])
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    broker = LocalKafka()
    try:
        if args.command == "jars":
            print(ensure_jars(broker.cache_dir))
        elif args.command == "up":
            target = ensure_kafka(local=broker, timeout=args.timeout)
            print(target.bootstrap)
            if target.external:
                print(f"using the cluster in {BOOTSTRAP_ENV}; nothing started", file=sys.stderr)
            else:
                state = broker.status()
                pid = state.pid if state else "?"
                print(f"kafka {target.kafka_version} pid {pid} ({broker.run_dir})", file=sys.stderr)
        elif args.command == "down":
            stopped = broker.stop()
            print("stopped" if stopped else "not running", file=sys.stderr)
        else:
            state = broker.status()
            if state is None:
                print(f"not running (state under {default_home()})", file=sys.stderr)
                return 3
            print(state.bootstrap)
            print(f"kafka {state.kafka_version} pid {state.pid} since {state.started_at}", file=sys.stderr)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.command == "up":
            print(f"(or point {BOOTSTRAP_ENV} at an existing cluster)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
