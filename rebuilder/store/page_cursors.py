"""Opaque, stable pagination cursors for keyset pagination.

A cursor names the sort key of the last row of a page, for one list only (``kind``),
encoded as URL-safe base64 of a small JSON array. The next page is the rows strictly
after that key, so rows inserted meanwhile never shift a page (no duplicates, no skips).
"""

from __future__ import annotations

import base64
import binascii
import json

from rebuilder.errors import UsageError

Key = tuple[int | str, ...]


class BadCursorError(UsageError):
    """A pagination cursor that this API did not hand out (or from another list)."""


_VERSION = 1
_MAX_LENGTH = 512


def encode(kind: str, key: Key) -> str:
    """The cursor after the row whose sort key is ``key`` in the list ``kind``."""
    raw = json.dumps([_VERSION, kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str, *types: type[int] | type[str]) -> Key:
    """The key inside ``cursor``; BadCursorError when it is not one of ours for ``kind``."""
    if len(cursor) > _MAX_LENGTH:
        raise BadCursorError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadCursorError("malformed cursor") from exc
    if not isinstance(data, list) or data[:2] != [_VERSION, kind] or len(data) != 2 + len(types):
        raise BadCursorError(f"not a cursor of this list ({kind})")
    key = tuple(data[2:])
    for value, wanted in zip(key, types, strict=True):
        # bool is an int in Python; a cursor never carries one.
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise BadCursorError("malformed cursor key")
    return key
