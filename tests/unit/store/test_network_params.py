"""Connections give a silent peer up on our side before the server gives us up."""

from __future__ import annotations

import pytest

from rebuilder.store.db import client_keepalive, network_params, server_keepalive


@pytest.mark.parametrize("timeout", [0.5, 1, 2, 3, 5, 15, 60, 600])
def test_the_client_always_gives_up_first(timeout: float) -> None:
    ours, theirs = client_keepalive(timeout), server_keepalive(timeout)
    ours_idle = ours["keepalives_idle"] + ours["keepalives_interval"] * ours["keepalives_count"]
    theirs_idle = (
        theirs["tcp_keepalives_idle"]
        + theirs["tcp_keepalives_interval"] * theirs["tcp_keepalives_count"]
    )
    assert ours_idle < theirs_idle  # an idle leader notices before its lock is freed
    assert ours["tcp_user_timeout"] < theirs["tcp_user_timeout"]  # and a busy one too
    assert ours_idle <= max(3, timeout)


def test_server_settings_go_in_options_unless_the_url_sets_its_own() -> None:
    params = network_params(15, "postgresql://db/rebuilder")
    assert params["options"] == (
        "-c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 "
        "-c tcp_keepalives_count=3 -c tcp_user_timeout=30000"
    )
    assert params["tcp_user_timeout"] == 15000
    own = network_params(15, "postgresql://db/rebuilder?options=-c%20search_path%3Dx")
    assert "options" not in own
    assert own["keepalives"] == 1
