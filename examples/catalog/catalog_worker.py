"""catalog's worker: runs on the hosts of <pool>_workers (the release, no traffic).

``python -m catalog_worker`` writes a heartbeat to /var/lib/catalog/heartbeat every
HEARTBEAT_S seconds; ``--check`` (turnout's worker check) exits 0 when the heartbeat is fresh
and names this release's version, else 1 with one line saying why.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("CATALOG_STATE_DIR", "/var/lib/catalog"))
HEARTBEAT_S = 2
RELEASE = Path(os.environ.get("APP_RELEASE_DIR") or Path(__file__).resolve().parent)
VERSION = (RELEASE / "VERSION").read_text(encoding="utf-8").strip()


def run() -> None:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        tmp = STATE / ".heartbeat.tmp"
        tmp.write_text(json.dumps({"version": VERSION, "at": time.time()}))
        os.replace(tmp, STATE / "heartbeat")
        time.sleep(HEARTBEAT_S)


def check() -> int:
    try:
        beat = json.loads((STATE / "heartbeat").read_text())
    except (OSError, ValueError) as error:
        print(f"catalog_worker: no heartbeat ({error})", file=sys.stderr)
        return 1
    if beat.get("version") != VERSION:
        print(f"catalog_worker: the running worker is {beat.get('version')}, not {VERSION}",
              file=sys.stderr)
        return 1
    if time.time() - float(beat.get("at", 0)) > 5 * HEARTBEAT_S:
        print("catalog_worker: the heartbeat is stale", file=sys.stderr)
        return 1
    print(f"catalog_worker {VERSION}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(check() if sys.argv[1:] == ["--check"] else run())
