"""Run states and the order they may change in (design.md, "Runs: identity, states").

The syncer uses `RANK` to refuse regressions: a run never moves out of a
terminal state, and never back to an earlier one.
"""

from __future__ import annotations

SCHEDULED = "scheduled"  # orchestrator waiting for its start time
WAITING = "waiting"  # pre-execution constraints not met yet
STARTING = "starting"  # executor asked to start it
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
KILLED = "killed"
SKIPPED = "skipped"  # a constraint or skipNextInstance said no
MISSED = "missed"  # the slot passed and catch-up did not apply
LOST = "lost"  # the executor can no longer find it

ACTIVE = (SCHEDULED, WAITING, STARTING, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, KILLED, SKIPPED, MISSED, LOST)
ALL = ACTIVE + TERMINAL
RANK = {SCHEDULED: 0, WAITING: 1, STARTING: 2, RUNNING: 3, **{s: 4 for s in TERMINAL}}

# Why a run ran when it did: its slot came (`schedule`), someone asked (`manual`), another
# run's kickOffJob action started it (`kickoff`), or its slot had passed its grace period
# unattended and catchUp ran it late (`catchup`: whether the slot was first found after a
# restart or a stall, or was claimed before a crash and started only after the restart).
TRIGGERS = ("schedule", "manual", "kickoff", "catchup")
