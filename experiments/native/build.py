"""Build the Rust comparison service (seed-rs) with cargo, once, on demand.

Nothing else in the project needs cargo: `make`, `make report` and `make test` work
without it. The build is cached in `.native/target` (git-ignored) and keyed by a hash of
the crate's sources, so a second call costs a file read, and a built binary is used even
where cargo has since gone away.

librdkafka is compiled from the source rdkafka-sys ships, with its own configure script
and make. Linking Debian's librdkafka-dev instead is not possible: rdkafka-sys refuses a
system librdkafka older than the one it bundles (2.12.1 for rdkafka 0.37), and Debian 12
ships 2.0.2. The `cmake-build` feature fails on that librdkafka without libcurl headers
(its config.h defines WITH_OAUTHBEARER_OIDC as 0, but rdkafka_conf.c tests it with
#ifdef and includes curl/curl.h), so the default build is used.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from experiments.builds import BuildResult, build_lock
from experiments.errors import LabError

CRATE_DIR = Path(__file__).resolve().with_name("seed-rs")
REPO_ROOT = CRATE_DIR.parents[2]
BINARY_NAME = "seed-rs"
TARGET_DIR_ENV = "LAB_NATIVE_TARGET_DIR"
# The newest rust-version among the locked dependencies (actix-web 4.18, uuid 1.29).
MIN_RUST = (1, 89)
INSTALL_HINT = ("run `make native` (it installs the Debian build packages), "
                "or `bash experiments/native/install-deps.sh`")
# Tool on PATH (or header file) -> the Debian package that provides it.
NATIVE_TOOLS = {"make": "make", "cc": "gcc", "c++": "g++", "pkg-config": "pkg-config"}
NATIVE_HEADERS = {"/usr/include/zlib.h": "zlib1g-dev"}


class NativeUnavailable(LabError):
    """cargo or a native build dependency is missing; `missing` names what to install."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            "the Rust comparison service cannot be built; missing: " + "; ".join(missing)
            + f". To fix: {INSTALL_HINT}."
        )
        self.missing = missing


class NativeBuildError(LabError):
    """`cargo build` failed; the message ends with the tail of its log."""


def target_dir() -> Path:
    return Path(os.environ.get(TARGET_DIR_ENV) or REPO_ROOT / ".native" / "target")


def binary_path() -> Path:
    return target_dir() / "release" / BINARY_NAME


def _stamp_path() -> Path:
    return target_dir() / "seed-rs.sources"


def find_cargo() -> str | None:
    """cargo on PATH, else rustup's default place (a non-login shell may lack it on PATH)."""
    found = shutil.which("cargo")
    if found:
        return found
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "bin" / "cargo"
    return str(home) if home.is_file() and os.access(home, os.X_OK) else None


def _rust_version(cargo: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([cargo, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"cargo (\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2])) if match else None


def missing_prereqs() -> list[str]:
    """What a build would lack, each named with what provides it; [] when all is there."""
    missing = []
    cargo = find_cargo()
    wanted = ".".join(map(str, MIN_RUST))
    if cargo is None:
        missing.append(f"cargo (a Rust toolchain >= {wanted}, e.g. from rustup; Debian 12's "
                       "cargo package is too old)")
    else:
        version = _rust_version(cargo)
        if version is None or version < MIN_RUST:
            found = ".".join(map(str, version)) if version else "unknown"
            missing.append(f"cargo >= {wanted} (found {found}; update the toolchain, e.g. `rustup update`)")
    missing += [f"{tool} (Debian package {package})"
                for tool, package in NATIVE_TOOLS.items() if shutil.which(tool) is None]
    missing += [f"{header} (Debian package {package})"
                for header, package in NATIVE_HEADERS.items() if not Path(header).exists()]
    return missing


def sources_digest() -> str:
    """Hash of everything cargo builds from: the manifest, the lock file and src/."""
    digest = hashlib.sha256()
    files = [CRATE_DIR / "Cargo.toml", CRATE_DIR / "Cargo.lock", *sorted((CRATE_DIR / "src").rglob("*.rs"))]
    for path in files:
        digest.update(str(path.relative_to(CRATE_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_built() -> bool:
    """True when the binary exists and was built from the current sources."""
    stamp = _stamp_path()
    return (binary_path().is_file() and stamp.is_file()
            and stamp.read_text().strip() == sources_digest())


def build(force: bool = False) -> BuildResult:
    """The path of a binary built from the current sources, running cargo only if needed.

    Raises `NativeUnavailable` (naming what to install) when a build is needed and a
    prerequisite is missing, `NativeBuildError` when cargo fails.
    """
    started = time.monotonic()
    with build_lock(target_dir()):
        if not force and is_built():
            return BuildResult(binary_path(), False, time.monotonic() - started)
        missing = missing_prereqs()
        if missing:
            raise NativeUnavailable(missing)
        cargo = find_cargo()
        assert cargo is not None  # missing_prereqs checked it
        # Taken before the build: an edit made while cargo runs must trigger the next one.
        digest = sources_digest()
        log = target_dir() / "build.log"
        cmd = [cargo, "build", "--release", "--locked", "--manifest-path", str(CRATE_DIR / "Cargo.toml")]
        env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir())}
        with log.open("wb") as out:
            result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, check=False)
        if result.returncode != 0 or not binary_path().is_file():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise NativeBuildError(f"`{' '.join(cmd)}` failed with exit code {result.returncode} "
                                   f"(full log: {log})\n{tail}")
        _stamp_path().write_text(digest + "\n")
    return BuildResult(binary_path(), True, time.monotonic() - started)
