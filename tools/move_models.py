"""Move the peewee models out of itinerary/db.py into itinerary/models.py, and every import.

Issue 15: db.py keeps DSN parsing, connections and dialect handling; the models (from the
`# --- models ---` line on: the proxy, the field types, the tables, `bind`, `tuples`) go to
models.py, and every `from itinerary.db import ...` and `dbmod.<model>` in itinerary/,
tests/, bench/ and itinerary.py is rewritten to import each name from where it now lives.
No re-export is left in db.py.

Re-runnable: after a merge it rewrites the imports that came in (`from itinerary.db import
Job` in a branch written before the move), and a models part that a merge brought back into
db.py (under the `# --- models ---` line) is appended to models.py. Run from the
repository root: `python tools/move_models.py && make lint`.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB, MODELS = ROOT / "itinerary/db.py", ROOT / "itinerary/models.py"
MARK = "# --- models ---"
HEADER = '''"""The peewee models: one class per table of migrations/*/001_initial.sql and after.

Apart from the connections (itinerary/db.py): a model says what a row is, db.py how
to reach the database without blocking the hub. Models are bound to `proxy`, which
`bind` points at the reader; the syncer passes the writer explicitly
(`query.execute(db.writer)`). Times are aware UTC in Python and naive UTC in every
dialect (`UTCDateTimeField`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import peewee as pw

from itinerary.db import Database

'''


def top_names(source: str) -> set[str]:
    """Names a module defines at its top level."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def split_db() -> None:
    """Cut db.py at MARK; what follows goes to (the end of) models.py."""
    text = DB.read_text()
    at = text.find(MARK)
    if at < 0:
        return
    start = text.rfind("\n", 0, at) + 1
    kept, moved = text[:start].rstrip() + "\n", text[text.find("\n", at) + 1 :]
    body = MODELS.read_text().rstrip() + "\n\n\n" if MODELS.exists() else HEADER
    MODELS.write_text(body + moved.lstrip("\n"))
    DB.write_text(kept)


def import_line(module: str, names: list[ast.alias], indent: str, tail: str) -> str:
    listed = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in names)
    return f"{indent}from {module} import {listed}{tail}"


def rewrite(path: Path, moved: set[str]) -> bool:
    """Import each moved name from itinerary.models; True if the file changed."""
    text = original = path.read_text()
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.ImportFrom) and node.module == "itinerary.db"):
            continue
        stay = [a for a in node.names if a.name not in moved]
        go = [a for a in node.names if a.name in moved]
        if not go:
            continue
        indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)  # type: ignore[union-attr]
        tail = "  # noqa: E402\n" if "noqa: E402" in lines[node.end_lineno - 1] else "\n"  # type: ignore[index]

        new = (import_line("itinerary.db", stay, indent, tail) if stay else "") + import_line(
            "itinerary.models", go, indent, tail
        )
        edits.append((node.lineno - 1, node.end_lineno or node.lineno, new))
    for first, last, new in sorted(edits, reverse=True):
        lines[first:last] = [new]
    text = "".join(lines)
    if re.search(r"^from itinerary import db as dbmod", text, re.M):
        used = {n for n in re.findall(r"\bdbmod\.(\w+)", text) if n in moved}
        for name in used:
            text = re.sub(rf"\bdbmod\.{name}\b", f"models.{name}", text)
        if used:
            text = re.sub(
                r"^(from itinerary import db as dbmod[^\n]*\n)",
                lambda m: (
                    m.group(1)
                    + "from itinerary import models"
                    + ("  # noqa: E402\n" if "E402" in m.group(1) else "\n")
                ),
                text,
                count=1,
                flags=re.M,
            )
    if text != original:
        path.write_text(text)
    return text != original


def main() -> int:
    split_db()
    moved = top_names(MODELS.read_text()) - {"log", "T"}
    files = [ROOT / "itinerary.py", *sorted((ROOT / "itinerary").rglob("*.py"))]
    files += sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    changed = [str(p) for p in files if p.exists() and rewrite(p, moved)]
    touched = [str(DB), str(MODELS), *changed]
    ruff = str(ROOT / ".venv/bin/ruff")
    subprocess.run([ruff, "check", "--fix", "-q", *touched], check=False)
    subprocess.run([ruff, "format", "-q", *touched], check=True)
    print(f"moved {len(moved)} names; rewrote {len(changed)} files")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
