"""Build the latency proxy with Go, once, on demand.

The proxy is Toxiproxy's server built as a library into `experiments/network/proxy/`
(main.go: the server, plus a latency toxic with microsecond resolution). Nothing else in
the project needs Go: `make`, `make report` and `make test` work without it. The binary
is cached in `.network/bin` (git-ignored) under a name that carries the pinned version and
a digest of the module's files, so a second call costs a stat, a change builds a new
binary, and a built binary is used even where Go has since gone away. `go build` fetches
the modules that go.sum pins through the user's Go module proxy (GOPROXY) like any Go build.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from experiments.builds import BuildResult, build_lock
from experiments.errors import LabError

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = Path(__file__).resolve().parent / "proxy"
SOURCE_FILES = ("main.go", "go.mod", "go.sum")
MODULE = "github.com/Shopify/toxiproxy/v2"


def _pinned_version() -> str:
    """Toxiproxy's release as proxy/go.mod requires it (its one declaration): the newest
    the module proxy serves here (`go list -m -versions` lists v2.3.0 and v2.5.0)."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(MODULE)} v(\S+)$",
                      (SOURCE_DIR / "go.mod").read_text(), re.MULTILINE)
    if match is None:
        raise LabError(f"{SOURCE_DIR / 'go.mod'} does not require {MODULE}")
    return match[1]


VERSION = _pinned_version()  # its go.mod asks Go 1.17
MIN_GO = (1, 17)
CACHE_DIR_ENV = "LAB_PROXY_DIR"
INSTALL_HINT = "install Go (https://go.dev/doc/install), then run `make proxy`"


class ProxyUnavailable(LabError):
    """The proxy is not built and cannot be built here (no Go); the message says what to do."""


class ProxyBuildError(LabError):
    """`go build` failed; the message ends with the tail of its output."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or REPO_ROOT / ".network")


@functools.cache  # asked by every is_built(); the module's files do not change under a run
def sources_digest() -> str:
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update((SOURCE_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def binary_path() -> Path:
    return cache_dir() / "bin" / f"toxiproxy-server-{VERSION}-{sources_digest()}"


def is_built() -> bool:
    return binary_path().is_file() and os.access(binary_path(), os.X_OK)


def find_go() -> str | None:
    """go on PATH, else the official tarball's place (a non-login shell may lack it on PATH)."""
    found = shutil.which("go")
    if found:
        return found
    default = Path("/usr/local/go/bin/go")
    return str(default) if default.is_file() and os.access(default, os.X_OK) else None


def _go_version(go: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"go(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2])) if match else None


def missing_prereqs() -> list[str]:
    """What a build would lack; [] when Go is there and recent enough."""
    go = find_go()
    wanted = ".".join(map(str, MIN_GO))
    if go is None:
        return [f"go (Go >= {wanted}: {INSTALL_HINT})"]
    version = _go_version(go)
    if version is None or version < MIN_GO:
        found = ".".join(map(str, version)) if version else "unknown"
        return [f"go >= {wanted} (found {found})"]
    return []


def skip_reason() -> str | None:
    """Why the proxy cannot be used here (for a caller that skips), or None."""
    if is_built():
        return None
    missing = missing_prereqs()
    return ("the latency proxy (Toxiproxy) is not built and cannot be built here; missing: "
            + "; ".join(missing)) if missing else None


def build(force: bool = False) -> BuildResult:
    """The path of the proxy's binary, running `go build` only if needed.

    Raises `ProxyUnavailable` when a build is needed and Go is missing, `ProxyBuildError`
    when the build fails.
    """
    started = time.monotonic()
    (cache_dir() / "bin").mkdir(parents=True, exist_ok=True)
    with build_lock(cache_dir()):
        if not force and is_built():
            return BuildResult(binary_path(), False, time.monotonic() - started)
        missing = missing_prereqs()
        if missing:
            raise ProxyUnavailable("the latency proxy (Toxiproxy) cannot be built; missing: "
                                   + "; ".join(missing))
        go = find_go()
        assert go is not None  # missing_prereqs checked it
        log = cache_dir() / "build.log"
        # The version is stamped in as the release builds do, so `/version` reports the pin.
        ldflags = f"-X {MODULE}.Version={VERSION}"
        with tempfile.TemporaryDirectory(dir=cache_dir()) as out_dir:
            built = Path(out_dir) / "toxiproxy-server"
            cmd = [go, "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(built), "."]
            with log.open("wb") as out:
                result = subprocess.run(cmd, cwd=SOURCE_DIR, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0 or not built.is_file():
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise ProxyBuildError(f"`{' '.join(cmd)}` failed with exit code {result.returncode} "
                                      f"(full log: {log})\n{tail}")
            built.replace(binary_path())
    return BuildResult(binary_path(), True, time.monotonic() - started)
