"""The job form's action rows in a real Chromium (see tests/browser.py): "Add action"
and "Remove" swap the actions fieldset by htmx, a changed type shows its own fields,
and the saved action appears on the job's definition page; axe passes and
screenshots of the form are taken wide and narrow, light and dark."""

from __future__ import annotations

import re

import pytest

from tests.browser import Tab

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def test_it_adds_fills_and_saves_an_action_row(admin: Tab) -> None:
    name = f"e2e-rows-{admin.theme}"
    admin.go("/jobs/new")
    admin.page.fill("#f-name", name)
    admin.page.fill("#f-commands", "true")
    admin.page.click("#s-preRunHook")  # the closed group opens
    admin.page.fill("#f-constraints-preRunHook-url", "https://gate.example/ok")
    admin.page.select_option("#f-new-action-type", "kickOffJob")
    admin.page.click("button:has-text('Add action')")
    admin.page.wait_for_selector("#f-actions-0-config-job")
    admin.page.select_option("#f-new-action-type", "retry")
    admin.page.click("button:has-text('Add action')")
    admin.page.wait_for_selector("#f-actions-1-config-maxRetries")
    admin.page.wait_for_selector("#f-actions-1-type:focus")  # the new row's type has focus
    admin.page.select_option("#f-actions-0-type", "webhook")  # htmx shows webhook's fields
    admin.page.wait_for_selector("#f-actions-0-config-url")
    admin.page.fill("#f-actions-0-config-url", "https://hooks.example/alert")
    admin.page.fill("#f-actions-1-config-maxRetries", "4")
    admin.page.click("button:has-text('Remove action 2')")
    admin.page.wait_for_selector("#f-actions-1-type", state="detached")
    admin.page.wait_for_selector("#f-new-action-type:focus")
    assert admin.page.input_value("#f-actions-0-config-url") == "https://hooks.example/alert"
    admin.page.press("#f-name", "Enter")  # the default button saves; it is not "Remove action 1"
    admin.page.wait_for_url(re.compile(r".*/jobs/\d+/definition.*"))
    row = admin.page.locator("tr", has_text="webhook")
    assert "https://hooks.example/alert" in row.inner_text()
    assert "https://gate.example/ok" in admin.page.inner_text("main")
    # Audited on a fresh load: a swap after axe ran made htmx's settle copy a style attribute
    # (a CSP console error) that no real page has.
    admin.go(re.sub(r"^.*(/jobs/\d+)/definition.*$", r"\1/edit", admin.page.url))
    assert admin.page.input_value("#f-actions-0-config-url") == "https://hooks.example/alert"
    admin.audit("job-form-rows")
