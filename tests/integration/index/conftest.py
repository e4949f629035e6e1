from __future__ import annotations

from tests.support.index_server import fixture_index

__all__ = ["fixture_index"]
