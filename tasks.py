"""The invoke namespace lives in the package (turnout.tasks) so `pip install` ships it too."""

from turnout.tasks import ns  # noqa: F401
