"""The command line: every command of `itinerary.py`, and nothing below the API imports it.

- `main`: the parser, `serve` (the default) and `migrate`;
- `apply`: `apply -f` and `export` (job files: `itinerary/jobfiles.py`);
- `tokens`: `token create|list|revoke` (`itinerary/tokens.py`);
- `integrations`: `integration create|list|test|delete` (`itinerary/webhooks/manage.py`).
"""
