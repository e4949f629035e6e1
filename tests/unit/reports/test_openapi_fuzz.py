"""Schemathesis against the app's own OpenAPI document: generated requests (valid and
invalid, including hostile strings and cursors) to every read operation of /api/v1
never get a 5xx, get only documented status codes, and every answer matches its
documented schema."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.fakes import FakeDispatcher
from tests.support.web import make_app
from tests.support.webdata import Fixture, settings_for


def test_reads_never_fail_and_match_their_schema(web_data: Fixture) -> None:
    app = make_app(settings_for(web_data), web_data.pool, dispatcher=FakeDispatcher())
    checked = []
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
        for found in schema.get_all_operations():
            operation = found.ok()
            if operation.method.upper() != "GET":
                continue  # writes need the operator token: covered by test_api.py

            @given(case=operation.as_strategy())
            @settings(
                max_examples=20,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                # Opaque pagination cursors are strings to the schema; a forged one is a
                # documented 400 problem, not a schema-valid request wrongly refused.
                case.call_and_validate(excluded_checks=[positive_data_acceptance])

            check()
            checked.append(operation.path)
    assert len(checked) >= 15, checked  # every read operation was exercised
