"""Progress a person can follow on a long run: a pure tracker of the run's events, and the two
displays that write it (to stderr).

`Tracker` is pure: fed the events ansible-runner gives (dicts with ``event`` and
``event_data``), it keeps the current phase (the part of the play name before " | "), each
host's state per phase and the counts (stage 3/10, smoke 2/10, flip 1/2), and returns what
changed. What a host's state means comes from the runs themselves:

- **stage**: the target hosts of the plan (the plan module's ``turnout_plan.target_hosts`` and
  ``target_workers``); a host is ok once app_release activated the release on it ("app_release
  | activate ...") or found it already active ("app_release | stage ..." answering
  ``already_active``), failed once "note the host failed to stage" ran (MILESTONES, milestone()).
- **smoke**: the same hosts; ok or failed from the smoke results (``turnout_smoke_results``
  from the load balancer, ``smoke_test_result`` of a worker).
- **flip**: the load balancers; flipped once "the map is flipped here" ran on one, back once
  "flip back" did.
- **provision**: the hosts of the plays that configure them (PROVISION_PLAYS), ok when the
  play (or its serial batch) ends.

A failed (not ignored) or unreachable host is failed or unreachable in the phase it happened in.

Two displays show it: `PlainDisplay` (one line per change, for Jenkins, AWX and any pipe) and
`LiveDisplay` (a rich.live table redrawn in place on a terminal). `display()` picks one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from turnout.runner import progress_line

RUNNING, OK, FAILED, UNREACHABLE, SKIPPED, WAITING = (
    "running", "ok", "failed", "unreachable", "skipped", "waiting")
FLIPPED, BACK = "flipped", "flipped back"
DONE = frozenset({OK, FAILED, UNREACHABLE, SKIPPED, FLIPPED, BACK})
COUNTED_AS_DONE = frozenset({OK, FLIPPED})  # n in n/N
CONTROLLER = "localhost"  # rides along in many plays; never a row
COUNTED_PHASES = ("stage", "smoke", "flip", "provision")

# Tasks that say where a host stands: task name -> (phase, state)
MILESTONES: dict[str, tuple[str, str]] = {
    "turnout | note the host failed to stage": ("stage", FAILED),
    "turnout | the map is flipped here": ("flip", FLIPPED),
    "turnout | flip back": ("flip", BACK),
}
# app_release's steps whose success means the host is staged (their names carry the version)
ACTIVATED, STAGED = "app_release | activate ", "app_release | stage "


def milestone(task: str, res: dict[str, Any]) -> tuple[str, str] | None:
    """Pure: the (phase, state) an ok result of ``task`` puts its host in, or None."""
    task = task.strip()
    if task in MILESTONES:
        return MILESTONES[task]
    if task.startswith(ACTIVATED) or (task.startswith(STAGED) and res.get("already_active")):
        return ("stage", OK)
    return None
# Plays whose hosts are provisioned when the play (or its serial batch) ends
PROVISION_PLAYS = (
    "Provision | the load balancers",
    "Provision | the idle pool's hosts and the workers, in parallel",
    "Provision | the live pool's hosts, one at a time, drained first when the app restarts",
)
MODES = ("auto", "tty", "plain")
MODE_ENV = "TURNOUT_PROGRESS"


def phase_of(play: str) -> str:
    """Pure: the phase a play belongs to ("Stage | stage and activate ..." -> "stage")."""
    return play.split(" | ", 1)[0].strip().lower()


@dataclass
class Phase:
    """One phase of the run: its hosts' states and how many there are to do (None: unknown)."""

    name: str
    hosts: dict[str, str] = field(default_factory=dict)
    total: int | None = None
    finished: bool = False
    failed: bool = False

    @property
    def done(self) -> int:
        return sum(1 for state in self.hosts.values() if state in COUNTED_AS_DONE)

    @property
    def count(self) -> str:
        """'n/N' (N: the hosts known to take part, else those seen; '' for none)."""
        total = self.total if self.total is not None else len(self.hosts)
        return f"{self.done}/{total}" if total or self.hosts else ""

    @property
    def state(self) -> str:
        if self.failed or any(s in (FAILED, UNREACHABLE, BACK) for s in self.hosts.values()):
            return FAILED
        if self.finished and self.total == 0 and not self.hosts:
            return SKIPPED  # e.g. the stage of a rollback to the warm pool
        return OK if self.finished else RUNNING


@dataclass(frozen=True)
class Change:
    """A host's new state in a phase, with the phase's count after it."""

    phase: str
    host: str
    state: str
    count: str

    @property
    def line(self) -> str:
        return f"{self.phase}: {self.host} {self.state} ({self.count})"


@dataclass
class Tracker:
    """Pure: per-phase, per-host progress of one playbook run, fed event by event."""

    lbs: list[str] = field(default_factory=list)  # the inventory's load balancers, if known
    app_hosts: list[str] = field(default_factory=list)  # and its app hosts (and workers)
    phases: dict[str, Phase] = field(default_factory=dict)
    current: str = ""
    play: str = ""
    targets: list[str] | None = None  # the plan's target hosts, once planned
    stage_planned: bool = True
    ended: bool = False  # the playbook's stats arrived
    _play_hosts: dict[str, str] = field(default_factory=dict, repr=False)

    def phase(self, name: str) -> Phase:
        if name not in self.phases:
            self.phases[name] = Phase(name, total=self._total(name))
            self._seed(self.phases[name])
        return self.phases[name]

    def _total(self, name: str) -> int | None:
        if name in ("stage", "smoke") and self.targets is not None:
            return len(self.targets) if (name == "smoke" or self.stage_planned) else 0
        if name == "flip" and self.lbs:
            return len(self.lbs)
        if name == "provision" and (self.lbs or self.app_hosts):
            return len(self.lbs) + len(self.app_hosts)
        return None

    def _seed(self, phase: Phase) -> None:
        """Hosts known before they run: the targets for stage and smoke, the LBs for flip."""
        known = {"stage": self.targets if self.stage_planned else [], "smoke": self.targets,
                 "flip": self.lbs, "provision": [*self.lbs, *self.app_hosts]}.get(phase.name)
        known = known or []
        for host in known:
            phase.hosts.setdefault(host, WAITING)

    def feed(self, event: dict[str, Any]) -> list[Change]:
        """Take one event; return the host state changes it made (in order)."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            changes = self._end_play()
            play = str(data.get("play", "")).strip()
            name = phase_of(play)
            if self.current and self.current != name:
                changes += self._finish(self.current)
            self.play, self.current = play, name
            self.phase(name).finished = False
            return changes
        if kind == "playbook_on_stats":
            self.ended = True
            changes = self._end_play()
            return changes + (self._finish(self.current) if self.current else [])
        if kind == "runner_on_ok":
            self._learn_plan(data.get("res") or {})
        host = str(data.get("host") or "")
        if not host or not self.current:
            return []
        return self._host_event(kind, host, data)

    def _host_event(self, kind: str, host: str, data: dict[str, Any]) -> list[Change]:
        res = data.get("res") or {}
        changes: list[Change] = []
        if kind == "runner_on_ok":
            changes += self._smoke_results(host, res)
            reached = milestone(str(data.get("task", "")), res)
            if reached and host != CONTROLLER:
                changes += self._set(reached[0], host, reached[1])
        if host == CONTROLLER:
            if kind in ("runner_on_failed", "runner_on_unreachable") \
                    and not data.get("ignore_errors"):
                self.phase(self.current).failed = True
            return changes
        phase = self.phase(self.current)
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            changes += self._set(self.current, host, FAILED)
        elif kind == "runner_on_unreachable" and not data.get("ignore_errors"):
            changes += self._set(self.current, host, UNREACHABLE)
        elif kind in ("runner_on_start", "runner_on_ok") and self._generic(phase.name):
            self._play_hosts.setdefault(host, SKIPPED)
            if kind == "runner_on_ok":
                self._play_hosts[host] = OK
            if phase.hosts.get(host) not in DONE and phase.hosts.get(host) != RUNNING:
                changes += self._set(self.current, host, RUNNING)
        elif kind == "runner_on_start" and phase.hosts.get(host) == WAITING:
            changes += self._set(self.current, host, RUNNING)
        return changes

    def _generic(self, name: str) -> bool:
        """A phase whose hosts are done when its plays end (not by a milestone)."""
        if name == "provision":
            return self.play in PROVISION_PLAYS
        return name not in COUNTED_PHASES

    def _end_play(self) -> list[Change]:
        """Hosts that ran in the play just ended are done with it (generic phases)."""
        changes: list[Change] = []
        if self.current and self._generic(self.current):
            for host, state in self._play_hosts.items():
                if self.phase(self.current).hosts.get(host) not in (FAILED, UNREACHABLE):
                    changes += self._set(self.current, host, state)
        self._play_hosts = {}
        return changes

    def _finish(self, name: str) -> list[Change]:
        """A phase ends: a host it counts that got no further than running was skipped."""
        phase = self.phase(name)
        phase.finished = True
        if name not in COUNTED_PHASES:
            return []
        changes: list[Change] = []
        for host, state in list(phase.hosts.items()):
            if state in (WAITING, RUNNING):
                changes += self._set(name, host, SKIPPED)
        return changes

    def _learn_plan(self, res: dict[str, Any]) -> None:
        plan = res.get("turnout_plan")
        if not isinstance(plan, dict) or "target_hosts" not in plan:
            return
        self.targets = [*plan.get("target_hosts", []), *(plan.get("target_workers") or [])]
        self.stage_planned = bool(plan.get("stage", True)) and not plan.get("noop", False)
        if plan.get("noop"):
            self.targets = []

    def _smoke_results(self, host: str, res: dict[str, Any]) -> list[Change]:
        facts = res.get("ansible_facts") or {}
        results = facts.get("turnout_smoke_results")
        if not isinstance(results, dict):
            single = facts.get("smoke_test_result")
            results = {host: single} if self.current == "smoke" and isinstance(single, dict) \
                and host != CONTROLLER else {}
        changes: list[Change] = []
        for target, result in sorted(results.items()):
            passed = isinstance(result, dict) and result.get("result") == "passed"
            changes += self._set("smoke", target, OK if passed else FAILED)
        return changes

    def _set(self, name: str, host: str, state: str) -> list[Change]:
        phase = self.phase(name)
        if phase.hosts.get(host) == state:
            return []
        phase.hosts[host] = state
        return [Change(name, host, state, phase.count)]

    def host_rows(self) -> list[tuple[str, str, str]]:
        """(host, phase, state): each host's latest phase (for the live table)."""
        latest: dict[str, tuple[str, str]] = {}
        for phase in self.phases.values():
            for host, state in phase.hosts.items():
                if state != WAITING or host not in latest:
                    latest[host] = (phase.name, state)
        return [(host, *latest[host]) for host in sorted(latest)]

    def flipped(self) -> list[str]:
        flip = self.phases.get("flip")
        return sorted(h for h, s in (flip.hosts if flip else {}).items() if s == FLIPPED)


# ------------------------------------------------------------------------------ displays

class PlainDisplay:
    """One line per meaningful change: '== <play>', '<phase>: <host> <state> (n/N)', FAILED
    and UNREACHABLE lines. No escape codes (Jenkins, AWX, a pipe)."""

    def __init__(self, say: Callable[[str], None], tracker: Tracker | None = None) -> None:
        self.say = say
        self.tracker = tracker or Tracker()

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def lines(self, event: dict[str, Any]) -> list[str]:
        """The lines an event makes (pure apart from the tracker's state)."""
        changes = self.tracker.feed(event)
        line = progress_line(event)
        shown = [c.line for c in changes if c.state != RUNNING and c.phase in COUNTED_PHASES]
        if event.get("event") == "playbook_on_play_start":
            return shown + ([line] if line else [])
        return ([line] if line else []) + shown

    def __call__(self, event: dict[str, Any]) -> None:
        for line in self.lines(event):
            self.say(line)


class LiveDisplay:
    """A table redrawn in place on a terminal (rich.live): each phase with n/N, each host's
    current phase and state, the LBs flipped. FAILED/UNREACHABLE lines print above it; the
    final table stays on screen."""

    def __init__(self, console: Any = None, tracker: Tracker | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        self.tracker = tracker or Tracker()
        # redrawn on each change (no refresh thread: events arrive on the caller's thread)
        self.live = Live(self.table(), console=self.console, transient=False,
                         auto_refresh=False)

    def __enter__(self) -> LiveDisplay:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self.table(), refresh=True)
        self.live.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        changes = self.tracker.feed(event)
        line = progress_line(event)
        if line and not line.startswith("=="):
            self.live.console.print(line, markup=False, highlight=False)
        if changes or event.get("event") == "playbook_on_play_start":
            self.live.update(self.table(), refresh=True)

    def table(self) -> Any:
        """The rich renderable for the tracker's state now."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        tracker = self.tracker
        phases = Table(expand=False)
        for column in ("phase", "hosts", "state"):
            phases.add_column(column)
        for phase in tracker.phases.values():
            count = phase.count if phase.name in COUNTED_PHASES else ""
            phases.add_row(phase.name, count, _styled(phase.state))
        counted = [name for name in COUNTED_PHASES if name in tracker.phases]
        hosts = Table(expand=False)
        for column in ("host", "now", *counted):
            hosts.add_column(column)
        for host, phase_name, state in tracker.host_rows():
            cells = [_styled(tracker.phases[name].hosts.get(host, "")) for name in counted]
            hosts.add_row(host, Text.assemble(f"{phase_name} ", _styled(state)), *cells)
        flipped = ", ".join(tracker.flipped()) or "none yet"
        failed = any(phase.state == FAILED for phase in tracker.phases.values())
        now = ("finished" + (" (failed)" if failed else "") if tracker.ended
               else tracker.play or "starting")
        return Group(Text(f"turnout: {now}", overflow="ellipsis", no_wrap=True), phases, hosts,
                     f"LBs flipped: {flipped}")


STYLES = {OK: "green", FLIPPED: "green", FAILED: "bold red", UNREACHABLE: "bold red",
          RUNNING: "yellow", BACK: "yellow", SKIPPED: "dim", WAITING: "dim"}


def _styled(state: str) -> Any:
    from rich.text import Text

    return Text(state, style=STYLES.get(state, ""))


def choose_mode(mode: str, stream: TextIO, environ: dict[str, str] | None = None) -> str:
    """Pure: 'tty' or 'plain'. auto (or $TURNOUT_PROGRESS) -> tty only when stream is a
    terminal and TERM is not 'dumb'."""
    environ = dict(os.environ if environ is None else environ)
    mode = mode if mode != "auto" else environ.get(MODE_ENV, "auto") or "auto"
    if mode not in MODES:
        from turnout.errors import InputError

        raise InputError(f"{MODE_ENV} must be one of {', '.join(MODES)} (got {mode!r}): "
                         f"unset it or set it to one of them")
    if mode == "auto":
        is_tty = getattr(stream, "isatty", lambda: False)()
        return "tty" if is_tty and environ.get("TERM", "") != "dumb" else "plain"
    return mode


def display(tracker: Tracker, mode: str = "auto", say: Callable[[str], None] | None = None,
            stream: TextIO | None = None) -> PlainDisplay | LiveDisplay:
    """The display for this run: live on a terminal (stderr, where progress goes), plain
    lines otherwise ($TURNOUT_PROGRESS=tty|plain overrides)."""
    stream = stream or sys.stderr
    if choose_mode(mode, stream) == "tty":
        from rich.console import Console

        return LiveDisplay(Console(file=stream, force_terminal=True), tracker)
    return PlainDisplay(say or (lambda line: print(line, file=stream, flush=True)), tracker)
