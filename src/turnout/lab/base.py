"""The lab's base root filesystem: one debootstrapped Debian 12, built once and cached.

Every lab host is an overlay on this directory, so it is never written to after it is built.
The cache lives outside the repository (default ``/var/cache/turnout/base-bookworm``) and is
rebuilt only when the recipe below changes (its hash is stored in a stamp file).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from turnout.errors import InputError, TurnoutError

SUITE = "bookworm"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "procps",
    "curl", "ca-certificates", "sudo", "haproxy", "socat",
)
# Units that only slow a lab host's boot or wake it up at random.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "console-getty.service", "systemd-timesyncd.service",
)
SSH_KEYGEN_DROPIN = "[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n"
SSHD_HARDENING = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n"
STAMP = ".turnout-base"
DEFAULT_CACHE = Path(os.environ.get("TURNOUT_LAB_CACHE", "/var/cache/turnout"))


def recipe_hash() -> str:
    """Identify the recipe, so a changed recipe rebuilds the cache."""
    recipe = "|".join((SUITE, *PACKAGES, *MASKED_UNITS, SSH_KEYGEN_DROPIN, SSHD_HARDENING, "3"))
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def find_mirror(sources_dir: Path = Path("/etc/apt"), text: str | None = None) -> str:
    """Read the Debian mirror this machine's apt already uses (no other host is reachable)."""
    candidates: list[str] = []
    if text is None:
        files = sorted((sources_dir / "sources.list.d").glob("*.sources"))
        files += [sources_dir / "sources.list"]
        text = "\n".join(f.read_text() for f in files if f.is_file())
    for stanza in re.split(r"\n\s*\n", text):
        uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
        suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
        if uris and suites and SUITE in suites.group(1).split():
            candidates.append(uris.group(1))
    for line in text.splitlines():
        match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
        if match and match.group(2) == SUITE:
            candidates.append(match.group(1))
    if not candidates:
        raise InputError(
            f"no apt source for Debian {SUITE} found in {sources_dir}: "
            "set TURNOUT_LAB_MIRROR to a reachable Debian mirror URL"
        )
    return candidates[0]


def base_dir(cache: Path = DEFAULT_CACHE) -> Path:
    return cache / f"base-{SUITE}"


def is_ready(cache: Path = DEFAULT_CACHE) -> bool:
    stamp = base_dir(cache) / STAMP
    return stamp.is_file() and stamp.read_text().strip() == recipe_hash()


def _configure(root: Path) -> None:
    """Turn a fresh debootstrap into a bootable, keyless lab host template."""
    (root / "etc/machine-id").write_bytes(b"")  # empty: systemd makes one per boot
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    dropin = root / "etc/systemd/system/ssh.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "10-turnout-hostkeys.conf").write_text(SSH_KEYGEN_DROPIN)
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/10-turnout.conf").write_text(SSHD_HARDENING)
    subprocess.run(["systemctl", f"--root={root}", "enable", "systemd-networkd"],
                   check=True, capture_output=True)
    # haproxy is in the base so the LB needs no package download; only the LB enables it.
    subprocess.run(["systemctl", f"--root={root}", "disable", "haproxy"],
                   check=True, capture_output=True)
    subprocess.run(["systemctl", f"--root={root}", "mask", *MASKED_UNITS],
                   check=True, capture_output=True)
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def ensure_base(cache: Path = DEFAULT_CACHE, log=sys.stderr) -> Path:
    """Return the cached base, building it first if missing or stale (about a minute)."""
    cache.mkdir(parents=True, exist_ok=True)
    target = base_dir(cache)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two labs starting at once build it once
        if is_ready(cache):
            return target
        if shutil.which("debootstrap") is None:
            raise InputError("debootstrap is not installed: run 'apt-get install debootstrap "
                             "systemd-container' (or 'make deps')")
        mirror = os.environ.get("TURNOUT_LAB_MIRROR") or find_mirror()
        building = cache / f"base-{SUITE}.building"
        shutil.rmtree(building, ignore_errors=True)
        print(f"lab: building the base image with debootstrap from {mirror} "
              "(once, about a minute)", file=log, flush=True)
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
             SUITE, str(building), mirror],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise TurnoutError(f"debootstrap failed ({proc.returncode}): {' | '.join(tail)}")
        _configure(building)
        (building / STAMP).write_text(recipe_hash() + "\n")
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
        return target
