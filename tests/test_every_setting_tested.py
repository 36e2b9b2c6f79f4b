"""Every constraint, action type and trigger the API documents has a test showing its effect.

A test says which it shows with `@pytest.mark.covers("name", ...)`; this walks the
OpenAPI document (the names the API accepts) and the test modules' markers.
"""

from __future__ import annotations

import ast
from pathlib import Path

from itinerary.api import DOCUMENT

TESTS = Path(__file__).resolve().parent


def documented() -> set[str]:
    job = DOCUMENT["components"]["schemas"]["Job"]["properties"]
    action = job["actions"]["items"]["properties"]
    return (
        set(job["constraints"]["properties"])
        | set(action["type"]["enum"])
        | set(action["trigger"]["enum"])
    )


def covered() -> dict[str, list[str]]:
    """name -> the tests marked as covering it."""
    found: dict[str, list[str]] = {}
    for path in TESTS.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_it_"):
                continue
            for mark in node.decorator_list:
                if isinstance(mark, ast.Call) and ast.unparse(mark.func).endswith("covers"):
                    for arg in mark.args:
                        found.setdefault(ast.literal_eval(arg), []).append(node.name)
    return found


def test_it_finds_a_test_for_every_constraint_action_and_trigger() -> None:
    names, marked = documented(), covered()
    assert {"preRunHook", "kickOffJob", "on_missed"} <= names  # it reads the real document
    missing = sorted(names - set(marked))
    assert not missing, f"no test marked @covers for: {', '.join(missing)}"
    unknown = sorted(set(marked) - names)
    assert not unknown, f"@covers names nothing the API documents: {', '.join(unknown)}"
