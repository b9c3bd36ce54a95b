"""The network between the parts of a run: round trips on each link of a local cluster,
applied by a latency proxy (Toxiproxy) in front of every listener, and calibrated.

Optional: the proxy is built with Go on demand (`make proxy`), never needed by `make`,
`make report` or `make test`; the default layout, loopback, uses no proxy at all.
"""

from experiments.network.build import (
    ProxyBuildError,
    ProxyUnavailable,
    binary_path,
    is_built,
    skip_reason,
)
from experiments.network.layout import (
    LOOPBACK,
    LOOPBACK_LAYOUT,
    MISS_RULE,
    PROFILES,
    Link,
    NetworkError,
    NetworkLayout,
    resolve,
)
from experiments.network.proxy import ProxyState, Route

__all__ = [
    "LOOPBACK",
    "LOOPBACK_LAYOUT",
    "MISS_RULE",
    "PROFILES",
    "Link",
    "NetworkError",
    "NetworkLayout",
    "ProxyBuildError",
    "ProxyState",
    "ProxyUnavailable",
    "Route",
    "binary_path",
    "is_built",
    "resolve",
    "skip_reason",
]
