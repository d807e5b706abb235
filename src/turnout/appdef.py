"""The app definition: what a team writes in its environment's inventory (``turnout_app`` in
group_vars) to have turnout run its service, checked before any host changes. Pure.

Every key has a default that runs turnout's sample app (``examples/app``), so an inventory
without ``turnout_app`` keeps working. docs/app.md is the reference, key by key; this module
is what enforces it: :func:`validate` returns the complete definition (defaults filled in,
paths derived from the name) or raises InputError naming the key and the fix.
"""

from __future__ import annotations

import os.path
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from turnout.errors import InputError

NAME_RE = re.compile(r"\A[a-z][a-z0-9-]{0,30}\Z")
ENV_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL")
VERSION_KINDS = ("json", "header", "regex", "command")
# Environment variables turnout sets itself; a team's env or secrets may not take them.
RESERVED_ENV = ("APP_PORT", "APP_BIND", "APP_POOL", "APP_HOST", "APP_RELEASE_DIR")
# Directories of the system that turnout must never own or hand to the app user (root and
# writable must be below one of them, e.g. /srv/<name>, /var/lib/<name>, /opt/<name>).
SYSTEM_DIRS = frozenset((
    "", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr",
    "/var", "/var/lib", "/var/log", "/var/cache", "/var/tmp", "/var/spool", "/var/run",
    "/var/opt", "/var/local", "/var/mail", "/usr/local", "/usr/lib", "/usr/bin", "/usr/sbin",
    "/usr/share", "/usr/local/bin", "/usr/local/lib", "/usr/local/sbin", "/usr/local/share"))
# Trees inside which nothing may be owned or made writable for the app.
SYSTEM_TREES = ("/etc/", "/proc/", "/sys/", "/dev/", "/boot/", "/run/", "/usr/", "/bin/",
                "/sbin/", "/lib/", "/lib64/", "/root/")


def system_dir(path: str) -> bool:
    """True for a directory of the system (or inside /etc, /usr, /proc, ...)."""
    normal = "/" + "/".join(part for part in path.split("/") if part and part != ".")
    normal = "" if normal == "/" else normal
    return normal in SYSTEM_DIRS or any((normal + "/").startswith(tree) for tree in SYSTEM_TREES)
DEFAULT_NAME = "app"
# How turnout.inventory reads an ansible-vault value (it never decrypts one).
VAULT_PLACEHOLDER = "<vault>"
DEFAULT_START = "/usr/bin/python3 app.py"
KEYS = ("name", "user", "root", "start", "workdir", "port", "bind", "env", "secrets",
        "templates", "health", "version", "stop", "drain_s", "build", "writable", "artifact",
        "keep", "workers", "checks")


@dataclass(frozen=True)
class Health:
    path: str = "/healthz"
    status: int = 200
    timeout_s: int = 5


@dataclass(frozen=True)
class VersionCheck:
    kind: str = "json"  # json | header | regex | command
    path: str = "/version"  # json, header, regex: the request
    key: str = "version"  # json: the key (dots for nesting, e.g. build.version)
    header: str = ""  # header: the response header that carries the version
    pattern: str = ""  # regex: group 1 (or the whole match) is the version
    command: str = ""  # command: run on the host in the release dir; its output is the version


@dataclass(frozen=True)
class Stop:
    signal: str = "SIGTERM"
    timeout_s: int = 30


@dataclass(frozen=True)
class Template:
    src: str  # the team's Jinja2 template, on the controller (beside the inventory)
    dest: str  # relative to the release directory, or to the shared directory
    shared: bool = False  # into <root>/shared/, which survives releases
    mode: str = "0640"


@dataclass(frozen=True)
class Check:
    """One of the team's own smoke checks: a request and what its answer must hold."""

    name: str
    path: str
    status: int = 200
    contains: str = ""


@dataclass(frozen=True)
class AppDef:
    """A complete, checked app definition."""

    name: str = DEFAULT_NAME
    user: str = DEFAULT_NAME
    root: str = "/srv/app"
    start: str = DEFAULT_START  # relative to the release directory
    workdir: str = "."
    port: int = 8080
    bind: str = "0.0.0.0"
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    templates: tuple[Template, ...] = ()
    health: Health = field(default_factory=Health)
    version: VersionCheck = field(default_factory=VersionCheck)
    stop: Stop = field(default_factory=Stop)
    drain_s: int = 0
    build: str = ""
    writable: tuple[str, ...] = ()
    artifact: str = "{name}-{version}.tar.gz"
    keep: int = 3
    workers: dict[str, str] = field(default_factory=dict)  # {"check": cmd, "start": cmd}
    checks: tuple[Check, ...] = ()

    @property
    def unit(self) -> str:
        return f"{self.name}.service"

    @property
    def shared_dir(self) -> str:
        return f"{self.root}/shared"

    @property
    def secrets_file(self) -> str:
        return f"/etc/turnout/{self.name}.env"

    def exec_start(self, command: str | None = None) -> str:
        """ExecStart: the start command (or ``command``) with a relative program resolved in
        the release."""
        words = shlex.split(command or self.start)
        program = words[0]
        if "/" in program and not program.startswith("/"):
            program = f"{self.root}/current/{program.removeprefix('./')}"
        return " ".join(_systemd_word(word) for word in [program, *words[1:]])

    def working_directory(self) -> str:
        if self.workdir.startswith("/"):
            return self.workdir
        rel = self.workdir.removeprefix("./").strip("/")
        rel = "" if rel == "." else rel
        return f"{self.root}/current" + (f"/{rel}" if rel else "")

    def artifact_name(self, version: str) -> str:
        return self.artifact.format(name=self.name, version=version)

    def as_facts(self) -> dict[str, Any]:
        """Plain data for the playbooks (role variables read it), secrets left out."""
        facts = asdict(self)
        facts["secrets"] = sorted(self.secrets)  # the names only; values stay in the vault
        facts.update(unit=self.unit, shared_dir=self.shared_dir, secrets_file=self.secrets_file,
                     exec_start=self.exec_start(), working_directory=self.working_directory())
        if self.workers:
            facts["workers"] = {**self.workers, "exec_start": self.exec_start(
                self.workers.get("start") or self.start)}
        return facts


def _systemd_word(word: str) -> str:
    """One word of an ExecStart= line: double-quoted when it holds blanks or quotes, with
    ``$NAME``/``${NAME}`` left for systemd to expand from the app's environment and ``%``
    doubled (systemd's specifiers)."""
    word = word.replace("%", "%%")
    if word and not re.search(r"[\s\"'\\;]", word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class _Checker:
    def __init__(self, where: str = "turnout_app") -> None:
        self.where = where

    def fail(self, key: str, what: str, fix: str) -> InputError:
        where = f"{self.where}.{key}" if key else self.where
        return InputError(f"{where}: {what}; {fix} (see docs/app.md)")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None
                ) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping (got {type(value).__name__})",
                            "write it as key: value lines")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    raise self.fail(f"{key}.{name}" if key else str(name), "is not a known key",
                                    f"use one of {', '.join(allowed)}")
        return dict(value)

    def text(self, value: Any, key: str, *, empty: bool = True) -> str:
        if value is None:
            if not empty:
                raise self.fail(key, "is missing", "give it a value")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(key, f"must be a string (got {type(value).__name__})",
                            "quote it")
        text = str(value)
        if "\n" in text:
            raise self.fail(key, "must be one line", "put it on one line")
        if not empty and not text.strip():
            raise self.fail(key, "is empty", "give it a value")
        return text

    def number(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool):
            value = None
        try:
            number = int(str(value), 10)
        except (TypeError, ValueError):
            raise self.fail(key, f"must be a whole number from {low} to {high} (got {value!r})",
                            "fix the number") from None
        if not low <= number <= high:
            raise self.fail(key, f"must be a whole number from {low} to {high} (got {number})",
                            "fix the number")
        return number

    def path_in_release(self, value: str, key: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise self.fail(key, f"{value!r} leaves the release directory",
                            "give a path relative to the release, without '..'")
        return value


def validate(value: Any) -> AppDef:
    """The checked definition of ``turnout_app`` (None or {} for the sample app)."""
    check = _Checker()
    raw = check.mapping(value, "", KEYS) if value not in (None, "") else {}
    name = check.text(raw.get("name", DEFAULT_NAME), "name", empty=False)
    if not NAME_RE.match(name):
        raise check.fail("name", f"{name!r} is not a service name",
                         "use 1-31 lowercase letters, digits or '-', starting with a letter")
    user = check.text(raw.get("user", name), "user", empty=False)
    if not NAME_RE.match(user) or user == "root":
        raise check.fail("user", f"{user!r} cannot run the app",
                         "give an unprivileged user name (lowercase letters, digits, '-')")
    root = check.text(raw.get("root", f"/srv/{name}"), "root", empty=False)
    if not root.startswith("/") or ".." in root.split("/") or system_dir(root):
        raise check.fail("root", f"{root!r} is not a directory turnout can own",
                         "give an absolute directory of its own, e.g. /srv/<name>")
    start = check.text(raw.get("start", DEFAULT_START if name == DEFAULT_NAME else ""),
                       "start")
    if not start.strip():
        raise check.fail("start", "is missing", "give the command that starts the service, "
                         "relative to the release directory, e.g. bin/server --port 8080")
    try:
        words = shlex.split(start)
    except ValueError as error:
        raise check.fail("start", f"cannot be parsed ({error})", "fix its quotes") from None
    if words[0].startswith("../") or "/../" in words[0]:
        check.path_in_release(words[0], "start")
    workdir = check.text(raw.get("workdir", "."), "workdir", empty=False)
    if not workdir.startswith("/"):
        check.path_in_release(workdir, "workdir")
    port = check.number(raw.get("port", 8080), "port", 1, 65535)
    bind = check.text(raw.get("bind", "0.0.0.0"), "bind", empty=False)
    env = {}
    for key, item in check.mapping(raw.get("env"), "env").items():
        env[_env_name(check, "env", key)] = check.text(item, f"env.{key}")
    secrets = {}
    for key, item in check.mapping(raw.get("secrets"), "secrets").items():
        secrets[_env_name(check, "secrets", key)] = check.text(item, f"secrets.{key}",
                                                               empty=False)
    for key in env:
        if key in secrets:
            raise check.fail(f"env.{key}", "is also a secret", "keep it in one of the two")
    _no_leaks(check, start, raw.get("build"), env, secrets)
    templates = tuple(_template(check, index, item)
                      for index, item in enumerate(_list(check, raw.get("templates"),
                                                         "templates")))
    health_raw = check.mapping(raw.get("health"), "health", ("path", "status", "timeout_s"))
    health = Health(path=_url_path(check, health_raw.get("path", "/healthz"), "health.path"),
                    status=check.number(health_raw.get("status", 200), "health.status", 100,
                                        599),
                    timeout_s=check.number(health_raw.get("timeout_s", 5), "health.timeout_s",
                                           1, 300))
    version = _version_check(check, raw.get("version"))
    stop_raw = check.mapping(raw.get("stop"), "stop", ("signal", "timeout_s"))
    signal = check.text(stop_raw.get("signal", "SIGTERM"), "stop.signal", empty=False)
    if signal not in SIGNALS:
        raise check.fail("stop.signal", f"{signal!r} is not a signal turnout sends",
                         f"use one of {', '.join(SIGNALS)}")
    stop = Stop(signal=signal, timeout_s=check.number(stop_raw.get("timeout_s", 30),
                                                      "stop.timeout_s", 1, 3600))
    writable = tuple(_writable(check, index, item) for index, item in
                     enumerate(_list(check, raw.get("writable"), "writable")))
    artifact = check.text(raw.get("artifact", "{name}-{version}.tar.gz"), "artifact",
                          empty=False)
    fields = set(re.findall(r"\{([^{}]*)\}", artifact))
    if "{version}" not in artifact or "/" in artifact or not fields <= {"name", "version"} \
            or re.sub(r"\{(name|version)\}", "", artifact).count("{") \
            or re.sub(r"\{(name|version)\}", "", artifact).count("}"):
        raise check.fail("artifact", f"{artifact!r} is not a file name with {{version}}",
                         "use e.g. {name}-{version}.tar.gz (only {name} and {version} "
                         "are filled in)")
    workers = check.mapping(raw.get("workers"), "workers", ("check", "start"))
    if workers and not check.text(workers.get("check"), "workers.check").strip():
        raise check.fail("workers.check", "is missing",
                         "give the command that checks a worker host, e.g. bin/worker --check")
    worker_start = check.text(workers.get("start"), "workers.start") if workers else ""
    if worker_start:
        try:
            shlex.split(worker_start)
        except ValueError as error:
            raise check.fail("workers.start", f"cannot be parsed ({error})",
                             "fix its quotes") from None
        _no_leaks(check, worker_start, "", {}, secrets, where="workers.start")
    return AppDef(
        name=name, user=user, root=root.rstrip("/"), start=start, workdir=workdir, port=port,
        bind=bind, env=env, secrets=secrets, templates=templates, health=health,
        version=version, stop=stop,
        drain_s=check.number(raw.get("drain_s", 0), "drain_s", 0, 3600),
        build=check.text(raw.get("build", ""), "build"), writable=writable, artifact=artifact,
        keep=check.number(raw.get("keep", 3), "keep", 1, 50),
        workers=({"check": str(workers["check"]), **({"start": worker_start} if worker_start
                                                     else {})} if workers else {}),
        checks=tuple(_smoke_check(check, index, item) for index, item in
                     enumerate(_list(check, raw.get("checks"), "checks"))))


def _smoke_check(check: _Checker, index: int, item: Any) -> Check:
    key = f"checks[{index}]"
    raw = check.mapping(item, key, ("name", "path", "status", "contains"))
    path = _url_path(check, raw.get("path"), f"{key}.path")
    return Check(name=check.text(raw.get("name", path), f"{key}.name", empty=False),
                 path=path,
                 status=check.number(raw.get("status", 200), f"{key}.status", 100, 599),
                 contains=check.text(raw.get("contains", ""), f"{key}.contains"))


def _list(check: _Checker, value: Any, key: str) -> list[Any]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise check.fail(key, f"must be a list (got {type(value).__name__})",
                         "write one '- ' item per line")
    return value


def _env_name(check: _Checker, section: str, key: Any) -> str:
    if not isinstance(key, str) or not ENV_NAME_RE.match(key):
        raise check.fail(f"{section}.{key}", "is not an environment variable name",
                         "use letters, digits and '_', not starting with a digit")
    if key in RESERVED_ENV:
        raise check.fail(f"{section}.{key}", "is set by turnout itself",
                         f"pick another name (turnout sets {', '.join(RESERVED_ENV)})")
    return key


def _no_leaks(check: _Checker, start: str, build: Any, env: dict[str, str],
              secrets: dict[str, str], where: str = "start") -> None:
    """A secret's value must reach the app only through its 0600 env file: never on a
    command line (visible in ps, unit files, logs) or in a plain env variable."""
    places = {where: start, "build": str(build or "")}
    places.update({f"env.{k}": v for k, v in env.items()})
    for secret, value in secrets.items():
        if len(value) < 4 or value == VAULT_PLACEHOLDER:
            continue  # too short to tell; or still encrypted (invoke reads no vault)
        for where, text in places.items():
            if value in text:
                raise check.fail(where, f"contains the value of secret {secret}",
                                 f"read ${secret} from the environment instead (secrets reach "
                                 "the app only through its 0600 env file)")


def _template(check: _Checker, index: int, item: Any) -> Template:
    key = f"templates[{index}]"
    raw = check.mapping(item, key, ("src", "dest", "shared", "mode"))
    src = check.text(raw.get("src"), f"{key}.src", empty=False)
    dest = check.path_in_release(check.text(raw.get("dest"), f"{key}.dest", empty=False),
                                 f"{key}.dest")
    mode = check.text(raw.get("mode", "0640"), f"{key}.mode", empty=False)
    if not re.fullmatch(r"0[0-7]{3}", mode):
        raise check.fail(f"{key}.mode", f"{mode!r} is not a file mode", "use e.g. '0640'")
    shared = raw.get("shared", False)
    if not isinstance(shared, bool):
        raise check.fail(f"{key}.shared", "must be true or false", "fix it")
    return Template(src=src, dest=dest, shared=shared, mode=mode)


def _url_path(check: _Checker, value: Any, key: str) -> str:
    path = check.text(value, key, empty=False)
    if not path.startswith("/") or " " in path:
        raise check.fail(key, f"{path!r} is not a URL path", "give a path like /healthz")
    return path


def _writable(check: _Checker, index: int, item: Any) -> str:
    path = check.text(item, f"writable[{index}]", empty=False)
    if not path.startswith("/") or ".." in path.split("/") or system_dir(path):
        raise check.fail(f"writable[{index}]", f"{path!r} cannot be made writable",
                         "give an absolute directory of the app's own, e.g. /var/lib/<name>")
    return path


def _version_check(check: _Checker, value: Any) -> VersionCheck:
    raw = check.mapping(value, "version", ("kind", "path", "key", "header", "pattern",
                                           "command"))
    kind = check.text(raw.get("kind", "json"), "version.kind", empty=False)
    if kind not in VERSION_KINDS:
        raise check.fail("version.kind", f"{kind!r} is not a kind of version check",
                         f"use one of {', '.join(VERSION_KINDS)}")
    path = _url_path(check, raw.get("path", "/version" if kind == "json" else "/"),
                     "version.path")
    found = VersionCheck(kind=kind, path=path, key=check.text(raw.get("key", "version"),
                                                              "version.key"),
                         header=check.text(raw.get("header", ""), "version.header"),
                         pattern=check.text(raw.get("pattern", ""), "version.pattern"),
                         command=check.text(raw.get("command", ""), "version.command"))
    if kind == "json" and not found.key:
        raise check.fail("version.key", "is missing", "name the JSON key, e.g. version")
    if kind == "header" and not re.fullmatch(r"[A-Za-z0-9-]+", found.header):
        raise check.fail("version.header", f"{found.header!r} is not a header name",
                         "name the response header, e.g. X-App-Version")
    if kind == "regex":
        if not found.pattern:
            raise check.fail("version.pattern", "is missing",
                             "give a regular expression, e.g. 'version (\\S+)'")
        try:
            re.compile(found.pattern)
        except re.error as error:
            raise check.fail("version.pattern", f"is not a regular expression ({error})",
                             "fix it") from None
    if kind == "command" and not found.command.strip():
        raise check.fail("version.command", "is missing",
                         "give the command that prints the version, e.g. bin/server --version")
    return found


def version_from(check: VersionCheck, status: int, body: str,
                 headers: Mapping[str, str]) -> str | None:
    """The version an answer reports under ``check`` (None when it reports none)."""
    if status != 200:
        return None
    if check.kind == "json":
        import json

        try:
            data: Any = json.loads(body)
        except ValueError:
            return None
        for part in check.key.split("."):
            data = data.get(part) if isinstance(data, Mapping) else None
        return data if isinstance(data, str) else None
    if check.kind == "header":
        lowered = {k.lower(): v for k, v in headers.items()}
        return lowered.get(check.header.lower())
    if check.kind == "regex":
        match = re.search(check.pattern, body)
        if not match:
            return None
        return match.group(1) if match.groups() else match.group(0)
    return body.strip().splitlines()[-1].strip() if body.strip() else None


def check_templates(app: AppDef, base: str) -> None:
    """Every template source the definition names exists (relative ones beside the
    inventory, in ``base``); InputError naming the first that does not."""
    for index, template in enumerate(app.templates):
        path = template.src if os.path.isabs(template.src) else os.path.join(base, template.src)
        if not os.path.isfile(path):
            raise InputError(f"turnout_app.templates[{index}].src: {template.src} not found "
                             f"(looked in {base}); put the template beside the inventory or "
                             "fix the path (see docs/app.md)")
