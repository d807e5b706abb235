"""What a lab is: hosts, addresses, names and the inventory that describes it. Pure: no I/O.

A lab has a short name (it prefixes machine, bridge and veth names, which Linux caps at 15
characters) and a private /24. Hosts: ``lbN`` at .1+N (1-3 load balancers), ``blueN`` at
.10+N, ``greenN`` at .30+N; the bridge (host side) is .1. Several labs with different names
and subnets can run at once.

With ``user`` (``lab.up --user deploy``) every host also gets that user, with passwordless sudo
and a key of its own, and the inventory connects as that user with become, as production
does; root keeps the lab's own key, which only the lab's tooling uses (the inventory never
has it, so nothing in turnout can log in as root there).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from turnout.errors import InputError

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,3}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MAX_APP_HOSTS = 10
MAX_LBS = 3
DEFAULT_NAME = "lab"
DEFAULT_SUBNET = "10.231.0.0/24"
DEFAULT_STATE_ROOT = Path("/var/lib/turnout/labs")


@dataclass(frozen=True)
class LabHost:
    """One host of the lab."""

    name: str
    group: str  # lb, blue or green
    address: str
    machine: str  # systemd-nspawn machine name, unique across labs

    @property
    def veth(self) -> str:
        """Host-side veth that systemd-nspawn --network-bridge creates."""
        return f"vb-{self.machine}"


@dataclass(frozen=True)
class LabConfig:
    """A validated lab description."""

    name: str = DEFAULT_NAME
    subnet: str = DEFAULT_SUBNET
    app_hosts: int = 2
    state_root: Path = field(default=DEFAULT_STATE_ROOT)
    lbs: int = 1
    user: str = "root"  # who the inventory connects as; not root: sudo, become

    def __post_init__(self) -> None:
        validate_name(self.name)
        validate_user(self.user)
        validate_app_hosts(self.app_hosts)
        validate_lbs(self.lbs)
        validate_subnet(self.subnet)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def bridge(self) -> str:
        return f"tn-{self.name}"

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def user_key_file(self) -> Path:
        """The key the inventory logs in with: the lab key as root, else the user's own."""
        return self.key_file if self.user == "root" else self.state_dir / f"{self.user}_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    def host_dir(self, host: str) -> Path:
        return self.state_dir / "hosts" / host

    def hosts(self) -> list[LabHost]:
        """Every host, load balancers first, then blue, then green."""
        base = self.network.network_address
        result = [LabHost(f"lb{index}", "lb", str(base + 1 + index), f"{self.name}-lb{index}")
                  for index in range(1, self.lbs + 1)]
        for offset, pool in ((10, "blue"), (30, "green")):
            for index in range(1, self.app_hosts + 1):
                host = f"{pool}{index}"
                result.append(LabHost(host, pool, str(base + offset + index),
                                      f"{self.name}-{host}"))
        return result

    def host(self, name: str) -> LabHost:
        for candidate in self.hosts():
            if candidate.name == name:
                return candidate
        known = ", ".join(h.name for h in self.hosts())
        raise InputError(f"unknown lab host '{name}': choose one of {known}")


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"invalid lab name {name!r}: use 1-4 lowercase letters or digits, "
                         "starting with a letter (e.g. 'lab')")
    return name


def validate_app_hosts(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_APP_HOSTS:
        raise InputError(f"--app-hosts must be a whole number from 1 to {MAX_APP_HOSTS} "
                         f"(got {count!r})")
    return count


def validate_lbs(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_LBS:
        raise InputError(f"--lbs must be a whole number from 1 to {MAX_LBS} (got {count!r})")
    return count


def validate_user(user: object) -> str:
    if not isinstance(user, str) or not USER_RE.match(user):
        raise InputError(f"invalid lab user {user!r}: use a Unix user name such as 'deploy' "
                         "(lowercase letters, digits, '_' or '-')")
    return user


def sudoers_line(user: str) -> str:
    """/etc/sudoers.d/ entry for the lab user: root without a password, like a deploy user."""
    return f"{validate_user(user)} ALL=(ALL:ALL) NOPASSWD: ALL\n"


def validate_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise InputError(f"invalid lab subnet {subnet!r}: give a private /24 such as "
                         f"{DEFAULT_SUBNET} ({exc})") from None
    if network.prefixlen != 24 or not network.is_private:
        raise InputError(f"invalid lab subnet {subnet!r}: give a private /24 such as "
                         f"{DEFAULT_SUBNET}")
    return network


def network_unit(host: LabHost, config: LabConfig) -> str:
    """systemd-networkd unit giving the host its static address on the lab bridge."""
    return (
        "[Match]\nName=host0\n\n"
        "[Network]\n"
        f"Address={host.address}/{config.network.prefixlen}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )


def hosts_file(host: LabHost, config: LabConfig) -> str:
    """/etc/hosts: every lab host by name, so hosts can reach each other."""
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{host.name}", "::1\tlocalhost ip6-localhost"]
    lines += [f"{other.address}\t{other.name}" for other in config.hosts()]
    return "\n".join(lines) + "\n"


def known_hosts_lines(host_keys: dict[str, str], config: LabConfig) -> str:
    """known_hosts for the lab: each address with the public key the lab generated for it."""
    lines = []
    for host in config.hosts():
        key = host_keys[host.name].split()
        lines.append(f"{host.address} {key[0]} {key[1]}")
    return "\n".join(lines) + "\n"


def ssh_options(config: LabConfig, batch: bool = True, key: bool = True) -> list[str]:
    """OpenSSH options every lab connection uses: lab key, lab known_hosts, strict checking."""
    options = [
        "-o", f"UserKnownHostsFile={config.known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes",
    ]
    if batch:
        options += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    if key:
        options += ["-i", str(config.key_file)]
    return options


def ssh_config_text(config: LabConfig) -> str:
    """An ssh_config so people can `ssh -F <state>/ssh_config blue1`."""
    blocks = []
    for host in config.hosts():
        blocks.append(
            f"Host {host.name}\n  HostName {host.address}\n  User root\n"
            f"  IdentityFile {config.key_file}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {config.known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n"
        )
    return "\n".join(blocks)


def inventory(config: LabConfig) -> dict:
    """The Ansible inventory (hosts.yml) for this lab: groups lb, blue, green, app."""
    by_group: dict[str, dict[str, dict[str, str]]] = {"lb": {}, "blue": {}, "green": {}}
    for host in config.hosts():
        by_group[host.group][host.name] = {"ansible_host": host.address}
    common_args = " ".join(ssh_options(config, key=False))  # key has its own variable
    connection = {"ansible_user": config.user,
                  "ansible_ssh_private_key_file": str(config.user_key_file)}
    if config.user != "root":
        connection["ansible_become"] = True
    return {
        "all": {
            "vars": {
                **connection,
                "ansible_ssh_common_args": common_args,
                "ansible_python_interpreter": "/usr/bin/python3",
                "turnout_lab_name": config.name,
            },
            "children": {
                "lb": {"hosts": by_group["lb"]},
                "app": {
                    "children": {
                        "blue": {"hosts": by_group["blue"]},
                        "green": {"hosts": by_group["green"]},
                    }
                },
            },
        }
    }
