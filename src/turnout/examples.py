"""The example services' artifacts (`invoke build --example NAME`), reproducible like the
sample app's: the same source, version and inputs give a byte-identical archive.

- ``app``: the sample app (turnout.artifact.build), ``app-<version>.tar.gz``.
- ``catalog``: a Flask app served by gunicorn; the archive (``catalog-<version>/``) bundles
  the wheels of its pinned, hashed requirements (downloaded once from PyPI into
  ``.cache/wheels/catalog`` on the controller) and pip, for hosts without internet access.
- ``site``: busybox's httpd (the static binary of Debian's busybox-static) serving a site; a
  flat archive (``bin/``, ``www/``, ``VERSION``), to show that any layout deploys.

Each example's app definition is its ``inventory/group_vars/all.yml``; no role or playbook
knows about any of them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from turnout import artifact
from turnout.errors import InputError

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
WHEEL_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "wheels"
# The hosts' Python (Debian 12): the wheels are chosen for it, not for the controller's.
HOST_PYTHON = {"platform": "manylinux2014_x86_64", "python_version": "3.11",
               "implementation": "cp", "abi": "cp311"}
BUSYBOX = Path("/bin/busybox")


def names() -> tuple[str, ...]:
    return tuple(BUILDERS)


def build(example: str, version: str, dist: Path, broken: str | None = None,
          notes: str | None = None) -> artifact.Artifact:
    """Build the artifact of one example service into ``dist``."""
    if example not in BUILDERS:
        raise InputError(f"unknown example {example!r}: use one of {', '.join(BUILDERS)}")
    artifact.validate_version(version)
    if broken and example != "app":
        raise InputError("--broken builds only the sample app (--example app)")
    return BUILDERS[example](version, Path(dist), broken, notes)


def _app(version: str, dist: Path, broken: str | None, notes: str | None) -> artifact.Artifact:
    return artifact.build(version, dist, EXAMPLES_DIR / "app", broken=broken, notes=notes)


def _requirements(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def wheels(requirements: Path, cache: Path) -> list[Path]:
    """The wheels of ``requirements`` (pinned and hashed) for the hosts' Python, from
    ``cache``, downloaded there from PyPI the first time (with --require-hashes)."""
    wanted = _requirements(requirements)
    cache.mkdir(parents=True, exist_ok=True)

    def found() -> dict[str, Path]:
        have = {}
        for wheel in cache.glob("*.whl"):
            name, ver = wheel.name.split("-")[:2]
            have[f"{name.lower().replace('_', '-')}=={ver}"] = wheel
        return have

    missing = [pin for pin in wanted if pin.lower() not in found()]
    if missing:
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", "--require-hashes", "-r", str(requirements),
                "-d", str(cache), "--platform", HOST_PYTHON["platform"], "--python-version",
                HOST_PYTHON["python_version"], "--implementation",
                HOST_PYTHON["implementation"], "--abi", HOST_PYTHON["abi"]]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
            raise InputError(f"cannot download the wheels of {requirements.name} "
                             f"({' '.join(tail)[:200]}): check PyPI access, or put them in "
                             f"{cache}/")
    have = found()
    return [have[pin.lower()] for pin in wanted]


def _catalog(version: str, dist: Path, broken: str | None,
             notes: str | None) -> artifact.Artifact:
    source = EXAMPLES_DIR / "catalog"
    files = {name: (source / name).read_bytes()
             for name in ("catalog.py", "catalog_worker.py", "requirements.txt")}
    files["VERSION"] = f"{version}\n".encode()
    for wheel in [*wheels(source / "requirements.txt", WHEEL_CACHE / "catalog"),
                  *wheels(source / "build-requirements.txt", WHEEL_CACHE / "catalog")]:
        files[f"wheels/{wheel.name}"] = wheel.read_bytes()
    content = artifact.archive_bytes(version, files, artifact.source_date_epoch(),
                                     top=f"catalog-{version}")
    return artifact.write(dist / f"catalog-{version}.tar.gz", content, version)


def static_busybox(path: Path = BUSYBOX) -> bytes:
    """The busybox binary of Debian's busybox-static (refused when it is a dynamic one: the
    hosts need not have its libraries)."""
    try:
        data = path.read_bytes()
    except OSError:
        raise InputError(f"{path} not found: install Debian's busybox-static "
                         "(make apt)") from None
    if not data.startswith(b"\x7fELF") or b"ld-linux" in data[:8192]:
        raise InputError(f"{path} is not a static binary: install Debian's busybox-static "
                         "(apt-get install busybox-static)")
    return data


def _site(version: str, dist: Path, broken: str | None, notes: str | None) -> artifact.Artifact:
    source = EXAMPLES_DIR / "site" / "www"
    files = {"bin/busybox": static_busybox(), "VERSION": f"{version}\n".encode(),
             "www/healthz": (source / "healthz").read_bytes(),
             "www/index.html": (source / "index.html").read_text(encoding="utf-8")
             .replace("{version}", version).encode()}
    content = artifact.archive_bytes(version, files, artifact.source_date_epoch(), top=None,
                                     executables=frozenset({"bin/busybox"}))
    return artifact.write(dist / f"site-{version}.tar.gz", content, version)


BUILDERS: dict[str, Callable[[str, Path, str | None, str | None], artifact.Artifact]] = {
    "app": _app, "catalog": _catalog, "site": _site}
