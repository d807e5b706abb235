"""Example app deployed by turnout: a tiny HTTP service, Python standard library only.

Runs under Debian 12's /usr/bin/python3 (3.11) on the target hosts, so keep it 3.11-clean.

Files next to this one:
  VERSION  the release version (one line), written by the artifact builder
  BROKEN   optional, only in deliberately broken test builds: one of
           unhealthy | wrong-version | crash | slow

Environment:
  APP_PORT (8080)  APP_BIND (0.0.0.0)  APP_POOL (unknown)  APP_HOST (hostname)
  APP_ACCESS_LOG   set to 0 to silence the one-line-per-request log on stderr

Endpoints: GET /healthz -> 200 "ok"; GET /version -> JSON {"version","host","pool"};
GET / -> 200 text; anything else 404.  SIGTERM/SIGINT shut down cleanly with exit 0.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
BROKEN_MODES = ("unhealthy", "wrong-version", "crash", "slow")
SLOW_DELAY_SECONDS = 2.0
IDLE_CONNECTION_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Settings:
    """What the app serves, read once at start-up."""

    version: str
    host: str
    pool: str
    broken: str  # "" for a good build, else one of BROKEN_MODES
    access_log: bool


def log(message: str) -> None:
    """One line on stderr (journald picks it up under systemd)."""
    print("app: " + message, file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Log one actionable line and exit."""
    log(message)
    sys.exit(code)


def read_version(release_dir: Path) -> str:
    """The release version from VERSION next to app.py."""
    version_file = release_dir / "VERSION"
    try:
        version = version_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        fail(f"cannot read {version_file}: {exc.strerror}; deploy a built artifact")
    if not version:
        fail(f"{version_file} is empty; deploy a built artifact")
    return version


def read_broken(release_dir: Path) -> str:
    """The broken mode from BROKEN next to app.py, or "" for a good build."""
    broken_file = release_dir / "BROKEN"
    if not broken_file.exists():
        return ""
    mode = broken_file.read_text(encoding="utf-8").strip()
    if mode not in BROKEN_MODES:
        fail(f"unknown mode {mode!r} in {broken_file}: use one of {', '.join(BROKEN_MODES)}")
    return mode


def load_settings(release_dir: Path) -> Settings:
    """Settings from the release directory and the environment."""
    access_log = os.environ.get("APP_ACCESS_LOG", "1").strip().lower()
    return Settings(
        version=read_version(release_dir),
        host=os.environ.get("APP_HOST") or socket.gethostname(),
        pool=os.environ.get("APP_POOL") or "unknown",
        broken=read_broken(release_dir),
        access_log=access_log not in ("0", "false", "no", "off"),
    )


class AppHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler; every response carries Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "turnout-example-app"
    sys_version = ""
    timeout = IDLE_CONNECTION_TIMEOUT_SECONDS
    settings: Settings  # set on the subclass built in main()

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self.respond(send_body=True)

    def do_HEAD(self) -> None:
        self.respond(send_body=False)

    def respond(self, send_body: bool) -> None:
        """Route the request and write one complete response."""
        settings = self.settings
        if settings.broken == "slow":
            time.sleep(SLOW_DELAY_SECONDS)
        path = urlsplit(self.path).path
        if path == "/healthz":
            if settings.broken == "unhealthy":
                self.send_text(503, "unhealthy\n", send_body)
            else:
                self.send_text(200, "ok", send_body)
        elif path == "/version":
            version = settings.version
            if settings.broken == "wrong-version":
                version += "-wrong"
            body = json.dumps({"version": version, "host": settings.host, "pool": settings.pool})
            self.send_body(200, "application/json", body + "\n", send_body)
        elif path == "/":
            text = f"hello from {settings.host} ({settings.pool}) version {settings.version}\n"
            self.send_text(200, text, send_body)
        else:
            self.send_text(404, "not found\n", send_body)

    def send_text(self, status: int, text: str, send_body: bool) -> None:
        self.send_body(status, "text/plain; charset=utf-8", text, send_body)

    def send_body(self, status: int, content_type: str, text: str, send_body: bool) -> None:
        payload = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        if self.settings.access_log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class AppServer(ThreadingHTTPServer):
    """Threaded server that does not print tracebacks for clients that hang up early."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class AppServer6(AppServer):
    """AppServer for an IPv6 APP_BIND such as '::'."""

    address_family = socket.AF_INET6


def parse_port(raw: str) -> int:
    """APP_PORT as an int in 0..65535 (0 picks a free port)."""
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        fail(f"invalid APP_PORT {raw!r}: use a port number from 0 to 65535", code=2)
    return port


def main() -> int:
    """Serve until SIGTERM or SIGINT, then shut down and return 0."""
    settings = load_settings(HERE)
    if settings.broken == "crash":
        fail("BROKEN=crash: this build crashes at start-up on purpose")
    bind = os.environ.get("APP_BIND") or "0.0.0.0"
    port = parse_port(os.environ.get("APP_PORT") or "8080")
    handler = type("Handler", (AppHandler,), {"settings": settings})
    server_class = AppServer6 if ":" in bind else AppServer
    try:
        server = server_class((bind, port), handler)
    except OSError as exc:
        fail(f"cannot listen on {bind}:{port}: {exc.strerror}")

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    log(f"version {settings.version} ({settings.pool}) listening on {bound_host}:{bound_port}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
