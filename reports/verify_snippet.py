"""The file page's "verify it yourself" commands: the whole sequence, runnable as shown.

1. download the published file and check it against the sha256 recorded at discovery;
2. fetch its attestation bundle from this site's API, where ``rebuilder verify`` looks;
3. fetch the operator's public key from ``/api/v1/keys`` (its id is printed, to compare
   with one obtained another way);
4. ``rebuilder verify`` the downloaded file, offline.

Names and URLs come from package uploads, so every value is shell-quoted: the commands
are meant to be pasted into a shell (and a test runs them so).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass

logger = logging.getLogger(__name__)

KEY_FILE = "operator-key.pem"

# Prints the key id on stderr and the PEM on stdout, from the /api/v1/keys document.
_KEY_FROM_API = (
    'import json, sys; k = json.load(sys.stdin)["keys"][0]; '
    'print("operator key id:", k["key_id"], file=sys.stderr); print(k["pem"], end="")'
)


@dataclass(frozen=True)
class VerifyTarget:
    """What the commands need to know about one file and this site."""

    base_url: str  # this site, ending with "/"
    file_id: int
    filename: str
    sha256: str
    file_url: str | None  # where the index serves it (http or https), if known
    bundle_path: str  # below the attestations folder (``rebuilder verify --attestations``)


def verify_commands(target: VerifyTarget) -> str:
    """The shell commands, one per line, with ``#`` comments saying what each step does."""
    values = (target.filename, target.file_url or "", target.bundle_path)
    if not all(v.isprintable() for v in values):
        return "# This file's name or address holds control characters: verify it by hand.\n"
    q = shlex.quote
    name = q(target.filename)
    folder = "attestations/" + target.bundle_path.rsplit("/", 1)[0]
    lines = ["# 1. The published file, checked against the sha256 the index gave for it"]
    if target.file_url:
        lines.append(f"curl -fsSL -o {name} {q(target.file_url)}")
    else:
        lines.append(f"# (download {target.filename} from the index into this folder)")
    lines += [
        f"echo {q(f'{target.sha256}  {target.filename}')} | sha256sum -c -",
        "# 2. Its signed attestations, from this rebuilder's API",
        f"mkdir -p {q(folder)}",
        f"curl -fsS -o {q('attestations/' + target.bundle_path)} "
        f"{q(f'{target.base_url}api/v1/files/{target.file_id}/bundle')}",
        "# 3. The operator's public key (compare the id printed with one you trust)",
        f"curl -fsS {q(target.base_url + 'api/v1/keys')} "
        f"| python3 -c {q(_KEY_FROM_API)} > {KEY_FILE}",
        "# 4. Verify, offline: signatures, this very file's sha256, the verdict",
        f"rebuilder verify {name} --attestations attestations --key {KEY_FILE}",
    ]
    return "\n".join(lines) + "\n"
