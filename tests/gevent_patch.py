"""Loaded by pytest before any other plugin (`-p tests.gevent_patch` in pyproject.toml).

gevent must patch the standard library before anything imports ssl or socket;
pytest's third-party plugins (anyio, hypothesis, schemathesis) import them early.
"""

from gevent import monkey

monkey.patch_all()
