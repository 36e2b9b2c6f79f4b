"""Anomaly detection: unusual runs found, explained in words, stored and acted on.

`models.py` holds the per-job baselines and scores (pure), `silence.py` the slots
with no run, `detector.py` the component that feeds them and raises what they find,
`actions.py` the `on_anomaly` actions. bench/anomaly.py measures how well and how fast.
"""

KINDS = ("duration", "lateness", "failure_rate", "silence")
