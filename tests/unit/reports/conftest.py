"""The web app over a migrated PostgreSQL schema filled with fixture rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.fakes import FakeDispatcher
from tests.support.postgres import database_url
from tests.support.web import make_app
from tests.support.webdata import Fixture, schema_with_data, settings_for

__all__ = ["database_url"]


@pytest.fixture(scope="module")
def web_data(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    yield from schema_with_data(database_url, tmp_path_factory.mktemp("data") / "blobs")


@pytest.fixture(scope="module")
def dispatcher() -> FakeDispatcher:
    return FakeDispatcher()


@pytest.fixture(scope="module")
def client(web_data: Fixture, dispatcher: FakeDispatcher) -> Iterator[TestClient]:
    app = make_app(settings_for(web_data), web_data.pool, dispatcher=dispatcher)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
