"""The seed article's service rebuilt in Rust (seed-rs), as a comparison target.

Optional: built with cargo on demand (`make native`), never needed by `make`, `make
report` or `make test`. `RustService` has `ServiceProcess`'s interface.
"""

from experiments.native.build import (
    NativeBuildError,
    NativeUnavailable,
    binary_path,
    build,
    is_built,
    missing_prereqs,
)
from experiments.native.service import RustService

__all__ = [
    "NativeBuildError",
    "NativeUnavailable",
    "RustService",
    "binary_path",
    "build",
    "is_built",
    "missing_prereqs",
]
