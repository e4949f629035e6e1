from __future__ import annotations

import re

import requests

import rebuilder
from rebuilder.index.http import HttpSettings, _SystemTrustAdapter, make_session, user_agent


def test_user_agent_names_us_and_no_host() -> None:
    ua = user_agent()
    assert ua.startswith(f"pypi-rebuilder/{rebuilder.__version__} ")
    assert f"requests/{requests.__version__}" in ua
    assert re.search(r"CPython/3\.\d+", ua)
    assert "http" not in ua
    assert "." not in ua.split()[0].removeprefix(f"pypi-rebuilder/{rebuilder.__version__}")


def test_session_defaults() -> None:
    session = make_session()
    assert session.headers["User-Agent"] == user_agent()
    adapter = session.get_adapter("https://127.0.0.1/")
    assert isinstance(adapter, _SystemTrustAdapter)
    assert session.get_adapter("http://127.0.0.1/") is adapter
    retry = adapter.max_retries
    assert retry.total == 3
    assert retry.status_forcelist is not None
    assert 503 in retry.status_forcelist
    assert retry.redirect is False or retry.redirect == 0
    assert adapter._pool_maxsize == 8


def test_session_settings() -> None:
    session = make_session(HttpSettings(retries=0, pool_maxsize=2, system_trust_store=False))
    adapter = session.get_adapter("https://127.0.0.1/")
    assert not isinstance(adapter, _SystemTrustAdapter)
    assert adapter.max_retries.total == 0  # type: ignore[attr-defined]
