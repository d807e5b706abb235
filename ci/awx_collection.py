"""Install the awx.awx collection pinned in ci/awx-collection.txt into a collections path.

`make tools` runs it. pip downloads the pinned ansible wheel (its sha256 checked, no
dependencies, nothing installed), and only ansible_collections/awx/awx/ is extracted from it:
    python ci/awx_collection.py .cache/ci/collections
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "ci/awx-collection.txt"
PREFIX = "ansible_collections/awx/awx/"


def main(target: Path) -> int:
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                        "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
                        "--require-hashes", "-r", str(LOCK), "-d", download],
                       check=True, stdin=subprocess.DEVNULL)
        (wheel_path,) = Path(download).glob("ansible-*.whl")
        with zipfile.ZipFile(wheel_path) as wheel:
            names = [name for name in wheel.namelist() if name.startswith(PREFIX)]
            if not names:
                print(f"awx-collection: {wheel_path.name} holds no {PREFIX}")
                return 1
            shutil.rmtree(target, ignore_errors=True)
            wheel.extractall(target, names)
    manifest = json.loads((target / PREFIX / "MANIFEST.json").read_text())
    print(f"awx-collection: awx.awx {manifest['collection_info']['version']} from "
          f"{wheel_path.name} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
