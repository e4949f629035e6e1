"""The operator's public keys: ``/api/v1/keys``, a page, and the PEM download.

Consumers need them to verify attestations (``rebuilder verify --key``) and the log's
checkpoints (the note verifier key). Only public halves are read (``reports.keys``).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from reports.deps import SettingsDep, templates
from reports.keys import KEY_FILE_NAME, operator_keys

logger = logging.getLogger(__name__)

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["api"])

PEM = "application/x-pem-file"


class KeyOut(BaseModel):
    key_id: str = Field(description="Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.")
    algorithm: str
    pem: str = Field(description="The public key (SubjectPublicKeyInfo PEM).")
    note_verifier: str | None = Field(
        description="The log's note verifier key (checkpoints), for an Ed25519 key."
    )


class KeysOut(BaseModel):
    keys: list[KeyOut]


@api.get("/keys", response_model=KeysOut, summary="The operator's public keys")
def get_keys(settings: SettingsDep) -> KeysOut:
    return KeysOut(
        keys=[
            KeyOut(key_id=k.key_id, algorithm=k.algorithm, pem=k.pem, note_verifier=k.note_verifier)
            for k in operator_keys(settings)
        ]
    )


@pages.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request, settings: SettingsDep) -> Response:
    return templates.TemplateResponse(
        request, "keys.html", {"keys": operator_keys(settings), "file_name": KEY_FILE_NAME}
    )


@pages.get("/keys/" + KEY_FILE_NAME)
def key_file(settings: SettingsDep) -> Response:
    """The operator's public key as a PEM file (``rebuilder verify --key``)."""
    keys = operator_keys(settings)
    if not keys:
        raise HTTPException(404, "This deployment publishes no public key.")
    return Response(
        keys[0].pem,
        media_type=PEM,
        headers={"Content-Disposition": f'attachment; filename="{KEY_FILE_NAME}"'},
    )
