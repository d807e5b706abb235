"""The `turnout` console script: the same invoke tasks as `invoke` in the checkout."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from invoke import Program

from turnout.tasks import ns


def _version() -> str:
    try:
        return version("turnout")
    except PackageNotFoundError:
        return "unknown"


program = Program(namespace=ns, name="turnout", binary="turnout", version=_version())


def main() -> None:
    program.run()
