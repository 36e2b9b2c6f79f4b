"""A run's life, from claiming its slot to its final state and the actions it takes.

Imports go one way: `cohort` -> `run` -> `constraints`, `actions` -> `hooks`; a run
knows its cohort only as something it can `poke`. The cohort drives a run through
its public steps (`open_claim`, `take_claim`, `launch`, `proceed`, `drop`).

- `run`: one run (`Orchestrator`, `Slot`): claim, wait, check, start, follow, finish;
- `cohort`: the runs due at one instant, claimed and started together;
- `constraints`: each constraint checked around the workload, one function each;
- `actions`: each action type, one handler each, and the triggers they answer;
- `hooks`: the HTTP call behind preRunHook and postRunHook;
- `admission`: the loop's side of maxConcurrentRuns (who may start, who waits).

Callers outside this package import only what is re-exported here.
"""

from itinerary.orchestrator.admission import admit
from itinerary.orchestrator.cohort import Cohort
from itinerary.orchestrator.run import NOT_CLAIMED, RELEASED, Orchestrator, Slot

__all__ = ["NOT_CLAIMED", "RELEASED", "Cohort", "Orchestrator", "Slot", "admit"]
