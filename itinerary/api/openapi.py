"""The OpenAPI 3.1 document, built from the route table so it cannot drift from the routes.

Paths, methods, roles, parameters, bodies and statuses come from each `Route`;
the component schemas below describe the JSON the handlers produce and accept,
and tests/test_openapi.py checks them against real responses with schemathesis.

Why one long module: the schemas are data, one per shape the API answers with, and are
read together with the route table that uses them.
"""

from __future__ import annotations

from typing import Any

from itinerary.api.routing import Route
from itinerary.errors import CODES
from itinerary.jobchecks import HOOK_METHODS, HOOK_RETRIES_MAX, OVERLAP_POLICIES, QUEUE_LIMIT_MAX
from itinerary.jobs import (
    ACTION_TYPES,
    CONSTRAINT_TYPES,
    MODIFIABLE_FIELDS,
    NAME_MAX,
    NAME_RE,
    TRIGGERS,
)
from itinerary.states import ALL as RUN_STATES
from itinerary.states import TRIGGERS as RUN_TRIGGERS

STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
TIME = {"type": "string", "format": "date-time"}
NTIME = {"type": ["string", "null"], "format": "date-time"}
STRS = {"type": "array", "items": STR}
INT = {"type": "integer"}
NINT = {"type": ["integer", "null"]}
OBJ = {"type": "object"}
NOBJ = {"type": ["object", "null"]}
ENV = {"type": "object", "additionalProperties": STR}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any) -> dict:
    schema = {"type": "object", "properties": props, **extra}
    schema["required"] = list(props if required is None else required)
    return schema


DURATION = {"type": ["string", "number"], "description": "a duration: 30s, 5m, 1h30m, 2d"}
HEADERS = {
    "type": "object",
    "additionalProperties": STR,
    "description": "HTTP headers; their values are shown masked (••••abcd), and a masked "
    "value sent back keeps the stored one",
}
HOOK = {
    "oneOf": [
        {"type": "string", "description": "the hook's URL"},
        _obj(
            {
                "url": STR,
                "timeout": DURATION,
                "headers": HEADERS,
                "method": {"enum": list(HOOK_METHODS)},
                "retries": {"type": "integer", "minimum": 0, "maximum": HOOK_RETRIES_MAX},
            },
            ("url",),
            additionalProperties=False,
        ),
    ],
    "description": "must answer 200; called with the run's context as JSON",
}
# One schema per constraint (jobchecks.py checks the same shapes, with the reasons).
CONSTRAINTS: dict[str, Any] = {
    "maxConcurrentRuns": {
        "oneOf": [
            {"type": "integer", "minimum": 1},
            _obj(
                {
                    "limit": {"type": "integer", "minimum": 1},
                    "overlap": {"enum": list(OVERLAP_POLICIES)},
                    "queueLimit": {"type": "integer", "minimum": 0, "maximum": QUEUE_LIMIT_MAX},
                },
                ("limit",),
                additionalProperties=False,
            ),
        ],
        "description": "overlap: skip (default), queue (at most queueLimit waiting, default "
        "10) or replace (kill the oldest running instance)",
    },
    "catchUp": {"type": "boolean"},
    "catchUpWindow": DURATION,
    "preRunHook": HOOK,
    "postRunHook": HOOK,
    "maxExpectedRunTime": DURATION,
    "maxAllowedRunTime": DURATION,
    "requirePreviousSuccess": {
        "oneOf": [
            {"type": "string", "description": "the job's name"},
            _obj(
                {
                    "job": {"type": ["string", "integer"], "description": "name or id"},
                    "args": STRS,
                    "within": DURATION,
                    "wait": DURATION,
                },
                ("job",),
                additionalProperties=False,
            ),
        ]
    },
}
assert set(CONSTRAINTS) == set(CONSTRAINT_TYPES)
ACTION = _obj(
    {
        "type": {"enum": list(ACTION_TYPES)},
        "trigger": {"enum": list(TRIGGERS)},
        "config": {
            "type": "object",
            "description": "retry: {maxRetries, backoff, maxBackoff}; kickOffJob: {job, args, "
            "resources, env}; webhook: {url or integration, template (Jinja2), headers}; "
            "killAllInstances, killLatestInstance, skipNextInstance: none",
        },
        "constraint": {"enum": list(CONSTRAINT_TYPES)},
    },
    ("type", "trigger"),
    additionalProperties=False,
)
# Job and namespace names (what the validator, itinerary/jobs.py, accepts): requests made from
# the document (schemathesis) then mostly pass, and reach the handlers.
LABEL = {"type": "string", "pattern": NAME_RE.pattern, "minLength": 1, "maxLength": NAME_MAX}
JOB_FIELDS: dict[str, Any] = {
    "name": {**LABEL, "description": "unique, a DNS-1123 label"},
    "description": STR,
    "schedule": {"type": ["string", "null"], "description": "cron; null or '' = manual only"},
    "timezone": {"type": "string", "description": "IANA zone the schedule is evaluated in"},
    "enabled": {"type": "boolean", "description": "false = paused"},
    "pausedReason": NSTR,
    "namespace": LABEL,
    "images": STRS,
    "commands": {"type": "array", "items": {**STRS, "minItems": 1}},
    "args": STRS,
    "serviceAccounts": STRS,
    "env": {**ENV, "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}},
    "envSecret": {"type": ["array", "object", "null"]},
    "resources": NOBJ,
    "podSpec": {"type": ["object", "null"], "description": "a Kubernetes PodSpec"},
    "tags": STRS,
    "constraints": {
        "type": "object",
        "properties": CONSTRAINTS,
        "additionalProperties": False,
    },
    "actions": {"type": "array", "items": ACTION},
    "manuallyRunnable": {"type": "boolean"},
    "manualRunModifiableFields": {"type": "array", "items": {"enum": list(MODIFIABLE_FIELDS)}},
}
READ_ONLY: dict[str, Any] = {"id": INT, "createdAt": NTIME, "updatedAt": NTIME, "archivedAt": NTIME}
RUN_FIELDS: dict[str, Any] = {
    "runId": STR,
    "jobId": INT,
    "jobName": NSTR,
    "scheduledAt": TIME,
    "trigger": {"enum": list(RUN_TRIGGERS)},
    "attempt": INT,
    "state": {"enum": list(RUN_STATES)},
    "reason": NSTR,
    "success": {"type": ["boolean", "null"]},
    "behindSchedule": {"type": "boolean"},
    "args": {"type": ["array", "null"], "items": STR},
    "startedAt": NTIME,
    "endedAt": NTIME,
    "durationSeconds": {"type": ["number", "null"]},
    "exitCode": NINT,
    "error": NSTR,
    "executor": NSTR,
    "handle": {"type": ["object", "null"], "description": "Kubernetes Job/pod or pid/log file"},
    "parentRunId": NSTR,
    "createdAt": TIME,
    "updatedAt": TIME,
}
ATTEMPT = _obj(
    {
        "attempt": INT,
        "state": {"enum": list(RUN_STATES)},
        "startedAt": NTIME,
        "endedAt": NTIME,
        "exitCode": NINT,
        "error": NSTR,
        "executor": NSTR,
        "handle": NOBJ,
    }
)
NNUM = {"type": ["number", "null"]}
ANOMALY = _obj(
    {
        "id": STR,
        "jobId": INT,
        "runId": NSTR,
        "slotAt": NTIME,
        "kind": {"enum": ["duration", "lateness", "failure_rate", "silence"]},
        "detectedAt": TIME,
        "score": {"type": "number"},
        "baseline": OBJ,
        "explanation": STR,
    }
)
RUN = _obj(
    {
        **RUN_FIELDS,
        "attempts": {"type": "array", "items": ATTEMPT},
        "overrides": _obj(
            {"resources": OBJ, "env": ENV},
            (),
            description="GET /runs/{id} only: the run's resources and env overrides ({} when "
            "none); env values whose names look secret (token, password, key, …) are masked",
        ),
        "anomaly": {"oneOf": [ANOMALY, {"type": "null"}], "description": "the latest, if any"},
    },
    tuple(RUN_FIELDS),
)
ERROR_CODE = {
    "type": "string",
    "description": "machine-readable: "
    + ", ".join(CODES.values())
    + ", or a specific one (archived, not_runnable, not_modifiable, not_active, not_started)",
}
SUMS = {"type": "object", "additionalProperties": {"type": "number"}}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": ERROR_CODE, "message": STR, "fields": ENV})}),
    "JobInput": {
        "type": "object",
        "properties": {**JOB_FIELDS, **{k: {**v, "readOnly": True} for k, v in READ_ONLY.items()}},
        "additionalProperties": False,
        "description": "POST needs name and commands (or podSpec); PUT keeps fields left out",
    },
    "JobCreate": {
        "allOf": [ref("JobInput")],
        "required": ["name"],
        "anyOf": [{"required": ["commands"]}, {"required": ["podSpec"]}],
        "description": "a new job: a name, and commands (or a podSpec)",
    },
    "Job": _obj({**READ_ONLY, **JOB_FIELDS}),
    "JobPage": _obj({"items": {"type": "array", "items": ref("Job")}, "nextCursor": NSTR}),
    "PauseInput": _obj({"reason": NSTR}, (), additionalProperties=False),
    "SkippedSlot": _obj({"jobId": INT, "scheduledAt": TIME}),
    "NextRuns": _obj(
        {
            "jobId": INT,
            "schedule": NSTR,
            "timezone": STR,
            "enabled": {"type": "boolean"},
            "description": STR,
            "nextRuns": {"type": "array", "items": TIME},
        }
    ),
    "Run": RUN,
    "RunPage": _obj({"items": {"type": "array", "items": ref("Run")}, "nextCursor": NSTR}),
    "RunOrPage": {"oneOf": [ref("Run"), ref("RunPage")]},
    "RunInput": _obj(
        {
            "args": STRS,
            "resources": OBJ,
            "env": ENV,
            "startTime": {"type": "string", "description": "RFC 3339 or +10m; default now"},
            "start-time": {"type": "string", "description": "the seed's spelling of startTime"},
        },
        (),
        additionalProperties=False,
    ),
    "RunAccepted": _obj({"runId": STR, "jobId": INT, "startAt": TIME}),
    "RunCancelled": _obj({"runId": STR, "cancelled": {"const": True}}),
    "ViolationList": _obj(
        {
            "items": {
                "type": "array",
                "items": _obj(
                    {
                        "id": STR,
                        "runId": STR,
                        "constraint": STR,
                        "at": TIME,
                        "details": OBJ,
                    }
                ),
            }
        }
    ),
    "ActionList": _obj(
        {
            "items": {
                "type": "array",
                "items": _obj(
                    {
                        "id": STR,
                        "runId": STR,
                        "action": STR,
                        "trigger": STR,
                        "violationId": NSTR,
                        "executedAt": TIME,
                        "success": {"type": "boolean"},
                        "error": NSTR,
                        "details": OBJ,
                    }
                ),
            }
        }
    ),
    "Logs": _obj({"runId": STR, "attempt": INT, "text": STR}),
    "SchedulePreviewInput": _obj(
        {
            "schedule": STR,
            "timezone": STR,
            "count": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
            "from": {"type": "string", "description": "RFC 3339 or -5m; default now"},
        },
        ("schedule",),
        additionalProperties=False,
    ),
    "SchedulePreview": _obj({"description": STR, "nextRuns": {"type": "array", "items": TIME}}),
    "Stats": _obj(
        {
            "from": TIME,
            "to": TIME,
            "runsByState": {"type": "object", "additionalProperties": INT},
            "jobs": _obj({"total": INT, "paused": INT}),
            "scheduler": SUMS,
            "syncer": SUMS,
            "webhooks": SUMS,
        }
    ),
    "RunEventList": _obj(
        {
            "runId": STR,
            "items": {
                "type": "array",
                "items": _obj(
                    {
                        "at": TIME,
                        "scope": {"enum": ["run", "attempt"]},
                        "attempt": NINT,
                        "from": {"type": ["string", "null"]},
                        "to": {"enum": list(RUN_STATES)},
                        "reason": NSTR,
                    }
                ),
            },
        }
    ),
    "JobStats": _obj(
        {
            "jobId": INT,
            "window": STR,
            "from": TIME,
            "to": TIME,
            "runs": INT,
            "runsByState": {"type": "object", "additionalProperties": INT},
            "successRate": NNUM,
            "retries": INT,
            "runsRetried": INT,
            "durationSeconds": _obj({"mean": NNUM, "p50": NNUM, "p95": NNUM, "max": NNUM}),
            "startLatenessSeconds": _obj({"p50": NNUM, "p95": NNUM}),
            "failureReasons": {
                "type": "array",
                "items": _obj({"reason": STR, "count": INT}),
            },
            "anomalies": {"type": "object", "additionalProperties": INT},
        }
    ),
    "Anomaly": ANOMALY,
    "AnomalyPage": _obj(
        {"jobId": INT, "items": {"type": "array", "items": ref("Anomaly")}, "nextCursor": NSTR}
    ),
    "JobEventList": _obj(
        {
            "items": {
                "type": "array",
                "items": _obj(
                    {
                        "type": {
                            "enum": ["violation", "action", "delivery", "anomaly", "flip", "change"]
                        },
                        "at": TIME,
                        "runId": NSTR,
                        "summary": STR,
                        "details": OBJ,
                    }
                ),
            },
            "jobId": INT,
            "nextBefore": NTIME,
        }
    ),
    "OpenAPI": OBJ,
}


# OpenAPI links: where an answer's ids lead, so that a client (and schemathesis' stateful
# phase) can go from a created job to the operations on it, and from a run to its own.
JOB_OPS = (
    "get_jobs_job_id",
    "put_jobs_job_id",
    "delete_jobs_job_id",
    "post_jobs_job_id_pause",
    "post_jobs_job_id_resume",
    "post_jobs_job_id_skip_next",
    "get_jobs_job_id_next_runs",
    "get_jobs_job_id_runs",
)
RUN_OPS = (
    "get_runs_run_id_violations",
    "get_runs_run_id_actions",
    "get_runs_run_id_logs",
)


def _links(field: str, *, jobs: bool = False, runs: bool = False) -> dict[str, Any]:
    value = f"$response.body#/{field}"
    links: dict[str, Any] = {}
    if jobs:
        for op in JOB_OPS:
            links[op] = {"operationId": op, "parameters": {"job_id": value}}
        links["get_runs_id"] = {"operationId": "get_runs_id", "parameters": {"id": value}}
        links["post_runs_id"] = {"operationId": "post_runs_id", "parameters": {"id": value}}
    if runs:
        for op in RUN_OPS:
            links[op] = {"operationId": op, "parameters": {"run_id": value}}
        links["get_runs_id"] = {"operationId": "get_runs_id", "parameters": {"id": value}}
        links["delete_runs_id"] = {"operationId": "delete_runs_id", "parameters": {"id": value}}
    return links


LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/jobs"): _links("id", jobs=True),
    ("PUT", "/jobs/{job_id}"): _links("id", jobs=True),
    ("GET", "/jobs/{job_id}"): _links("id", jobs=True),
    ("POST", "/jobs/{job_id}/pause"): _links("id", jobs=True),
    ("POST", "/runs/{id}"): _links("runId", runs=True),
    ("DELETE", "/runs/{id}"): _links("runId", runs=True),
}


def _operation(route: Route) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": p.name,
            "in": "path",
            "required": True,
            "schema": p.schema,
            "description": p.description,
        }
        for p in route.path_params
    ]
    for p in route.params:
        param = {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": p.schema,
            "description": p.description,
        }
        if p.schema.get("type") == "array":
            param.update(style="form", explode=True)
        parameters.append(param)
    responses: dict[str, Any] = {}
    for status in route.statuses():
        if status == route.ok:
            ok: dict[str, Any] = {"description": "success"}
            if route.response:
                content = {route.content_type: {"schema": ref(route.response)}}
                content.update({k: {"schema": v} for k, v in route.alt_content.items()})
                ok["content"] = content
            links = LINKS.get((route.method, route.path))
            if links:
                ok["links"] = links
            responses[str(status)] = ok
        else:
            responses[str(status)] = {
                "description": CODES[status].replace("_", " "),
                "content": {"application/json": {"schema": ref("Error")}},
            }
    # gevent's server answers 414 (no body) to a request line longer than 8 KiB.
    responses["414"] = {"description": "URI too long"}
    role = f" Role: {route.role}." if route.role else " Public."
    op: dict[str, Any] = {
        "operationId": route.method.lower()
        + route.path.replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace("-", "_")
        .replace(".", "_"),
        "summary": route.summary,
        "description": route.summary + "." + role,
        "tags": [route.tag],
        "parameters": parameters,
        "responses": responses,
        "security": [{"bearer": []}] if route.role else [],
    }
    if route.body:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": ref(route.body)}},
        }
    return op


def build(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The whole document for `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Itinerary API",
            "version": "1",
            "description": "Jobs, runs and schedules of Itinerary. Errors have the body "
            '{"error": {"code", "message", "fields"}}. Times are RFC 3339 UTC.',
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
