#!/usr/bin/env bash
# Debian packages the Rust comparison service (seed-rs) needs to build: rdkafka-sys
# compiles librdkafka from its bundled source with configure + make (Debian 12's
# librdkafka-dev, 2.0.2, is older than the 2.12.1 rdkafka 0.37 requires to link it), and wrk
# drives the side-by-side benchmark. cargo itself comes from rustup: Debian 12's cargo
# is too old for actix-web 4, and a toolchain is not something this script downloads.
set -euo pipefail

packages=(make gcc g++ pkg-config zlib1g-dev wrk)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install as root: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null && [[ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    echo "cargo not found: install a Rust toolchain (rustup), then run make native again" >&2
    exit 1
fi
