"""Fetch the pinned Kafka jars from Maven Central into a cache that later runs reuse."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from experiments.errors import LabError, MissingToolError

POM = Path(__file__).with_name("pom.xml")
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def kafka_version(pom: Path = POM) -> str:
    """The Kafka release the descriptor pins (its single source of truth)."""
    version = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _NS)
    if version is None or not version.text:
        raise LabError(f"{pom} does not pin kafka.version")
    return version.text.strip()


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise MissingToolError("java", f"could not read the version from `{java} -version`")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java() -> str:
    """Path of a Java 17+ runtime, or a clear error saying how to get one."""
    java = shutil.which("java")
    if java is None:
        raise MissingToolError(
            "java",
            "install a JDK 17+ (Debian: `apt-get install openjdk-17-jre-headless`; "
            "conda: `conda env create -f environment.yml`)",
        )
    major = java_major_version(java)
    if major < 17:
        raise MissingToolError("java", f"found Java {major}; Kafka 4 brokers need Java 17+")
    return java


def jars_dir(cache_dir: Path, pom: Path = POM) -> Path:
    return cache_dir / "jars" / kafka_version(pom)


def ensure_jars(cache_dir: Path, pom: Path = POM) -> Path:
    """Return a directory holding every runtime jar of the broker, fetching it on first use."""
    target = jars_dir(cache_dir, pom)
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(
            "mvn", "install Apache Maven (Debian: `apt-get install maven`; or the conda environment)"
        )
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        raise LabError(f"fetching the Kafka jars failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    marker.write_text(kafka_version(pom) + "\n")
    return target
