"""catalog: an example service turnout deploys, a Flask app served by gunicorn.

Its artifact (``invoke build --example catalog``) bundles the wheels of requirements.txt; the
app definition's build step installs them into a virtualenv inside the release on hosts
without internet access. Runs on Debian 12's Python 3.11.

Environment: APP_RELEASE_DIR (the release, set by turnout), APP_HOST, APP_POOL,
CATALOG_GREETING (plain, from the app definition), CATALOG_API_TOKEN (a secret: its value is
never shown, only whether it is set).

Endpoints: /healthz -> "ok"; /api/info -> {"build": {"version"}, "host", "pool", ...};
/ -> a small HTML page; /slow?s=N sleeps N seconds (at most 120), then answers like /.
"""

import json
import os
import time
from pathlib import Path

from flask import Flask, Response, request

RELEASE = Path(os.environ.get("APP_RELEASE_DIR") or Path(__file__).resolve().parent)
VERSION = (RELEASE / "VERSION").read_text(encoding="utf-8").strip()
HOST = os.environ.get("APP_HOST", "unknown")
POOL = os.environ.get("APP_POOL", "unknown")

app = Flask(__name__)


@app.after_request
def version_header(response: Response) -> Response:
    response.headers["X-Catalog-Version"] = VERSION
    response.headers["Cache-Control"] = "no-store"
    return response


@app.get("/healthz")
def healthz() -> str:
    return "ok"


@app.get("/api/info")
def info() -> Response:
    settings = RELEASE / "catalog.json"  # rendered per host from the team's template
    body = {"build": {"version": VERSION}, "host": HOST, "pool": POOL,
            "greeting": os.environ.get("CATALOG_GREETING", ""),
            "token_configured": bool(os.environ.get("CATALOG_API_TOKEN")),
            "settings": json.loads(settings.read_text()) if settings.is_file() else None}
    return Response(json.dumps(body) + "\n", mimetype="application/json")


@app.get("/")
def index() -> str:
    return f"<h1>catalog {VERSION}</h1><p>served by {HOST} ({POOL})</p>\n"


@app.get("/slow")
def slow() -> str:
    time.sleep(min(float(request.args.get("s", "1")), 120.0))
    return index()
