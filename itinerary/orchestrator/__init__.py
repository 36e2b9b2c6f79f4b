"""A run's life, from claiming its slot to its final state and the actions it takes.

`run` drives one run (`Orchestrator`, `Slot`); `cohort` claims and starts the runs
due at one instant together; `actions` holds the action handlers. Callers outside
this package import only what is re-exported here.
"""

from itinerary.orchestrator.cohort import Cohort
from itinerary.orchestrator.run import NOT_CLAIMED, RELEASED, Orchestrator, Slot

__all__ = ["NOT_CLAIMED", "RELEASED", "Cohort", "Orchestrator", "Slot"]
