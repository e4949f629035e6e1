"""Find the repository a release claims to come from, in its own metadata.

Where the URL comes from, best first:

1. an operator's override for the project (``Settings.source_overrides``);
2. a ``Project-URL`` whose label, normalized as PEP 753 says (punctuation and
   whitespace removed, lowercased), is one of the *source* labels (``source``,
   ``repository``, ``sourcecode``, ``code``, ``github``, ``gitlab``, ...);
3. a ``Project-URL`` labelled ``homepage`` (or another label) or ``Home-page`` that
   points at a repository on a known forge;
4. a repository link on a known forge found in the description.

Forge URLs are reduced to the repository itself (``/tree/main/...``, ``/issues``,
``.git`` dropped). The URL is then rewritten through the operator's mirrors
(``Settings.source_mirrors``: URL prefix -> replacement, longest prefix wins). Nothing
is fetched here: this is pure parsing of untrusted text.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from urllib.parse import urlsplit, urlunsplit

from packaging.utils import canonicalize_name

from rebuilder.source.errors import NoRepositoryError

logger = logging.getLogger(__name__)

#: Normalized labels (PEP 753) that name the source repository.
SOURCE_LABELS = frozenset(
    {
        "source",
        "sourcecode",
        "repository",
        "repo",
        "code",
        "git",
        "github",
        "gitlab",
        "codeberg",
        "bitbucket",
        "sourcerepository",
        "githubrepository",
    }
)
HOMEPAGE_LABELS = frozenset({"homepage", "home"})
#: Forges whose URLs have the form ``https://HOST/OWNER/REPO`` (GitLab allows groups).
KNOWN_FORGES = frozenset(
    {"github.com", "gitlab.com", "codeberg.org", "bitbucket.org", "git.sr.ht", "salsa.debian.org"}
)
_NESTED_FORGES = frozenset({"gitlab.com", "salsa.debian.org"})  # groups/subgroups/repo
_FORGE_STOP = frozenset(
    {"-", "tree", "blob", "issues", "pulls", "pull", "wiki", "releases", "tags", "commits",
     "commit", "actions", "src", "merge_requests", "raw", "archive", "compare", "discussions",
     "blame", "refs"}
)  # fmt: skip
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'()\[\]`]+")
_MAX_METADATA_CHARS = 4 * 1024**2


def normalize_label(label: str) -> str:
    """PEP 753 label normalization: drop punctuation and whitespace, lowercase."""
    drop = set(string.punctuation) | set(string.whitespace)
    return "".join(c for c in label if c not in drop).lower()


@dataclass(frozen=True)
class Location:
    """Where the source of a release is, and how that was decided."""

    url: str  # the URL to clone (after mirrors)
    declared: str  # the URL as found (or configured), before mirrors
    found_in: str  # "override", "Project-URL: Source", "Home-page", "description"
    tried: tuple[str, ...] = ()  # the candidates considered, for the record


def forge_repository(url: str) -> str | None:
    """``https://HOST/OWNER/REPO`` for a URL into a repository on a known forge, else None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or host not in KNOWN_FORGES:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if host == "git.sr.ht":
        segments = segments[:2] if len(segments) >= 2 and segments[0].startswith("~") else []
    elif host in _NESTED_FORGES:
        cut = next((i for i, s in enumerate(segments) if s in _FORGE_STOP), len(segments))
        segments = segments[:cut]
    else:
        segments = segments[:2]
    if len(segments) < 2 or segments[-1] in _FORGE_STOP:
        return None
    last = segments[-1].removesuffix(".git")
    if not last or any(not _safe_segment(s) for s in [*segments[:-1], last]):
        return None
    return urlunsplit(("https", host, "/".join(["", *segments[:-1], last]), "", ""))


def _safe_segment(segment: str) -> bool:
    return segment not in {".", ".."} and all(c.isalnum() or c in "-_.~" for c in segment)


def apply_mirrors(url: str, mirrors: Mapping[str, str]) -> str:
    """Rewrite ``url`` with the longest matching prefix of ``mirrors`` (unchanged if none)."""
    for prefix in sorted(mirrors, key=len, reverse=True):
        if prefix and url.startswith(prefix):
            return mirrors[prefix] + url[len(prefix) :]
    return url


def _override(project: str, overrides: Mapping[str, str]) -> str | None:
    wanted = canonicalize_name(project)
    for name, url in overrides.items():
        if canonicalize_name(name) == wanted:
            return url
    return None


def project_urls(metadata_text: str) -> tuple[list[tuple[str, str]], str | None, str]:
    """(Project-URL (label, url) pairs, Home-page, description) of core metadata text."""
    message = HeaderParser().parsestr(metadata_text[:_MAX_METADATA_CHARS])
    pairs = []
    for value in message.get_all("Project-URL") or []:
        label, sep, url = str(value).partition(",")
        if sep:
            pairs.append((label.strip(), url.strip()))
    home = message.get("Home-page")
    description = message.get("Description") or ""
    body = message.get_payload()
    if isinstance(body, str):
        description = f"{description}\n{body}"
    return pairs, str(home).strip() if home else None, description


def locate_repository(
    project: str,
    metadata_text: str | None,
    *,
    overrides: Mapping[str, str] | None = None,
    mirrors: Mapping[str, str] | None = None,
) -> Location:
    """The repository of ``project`` (see the module documentation).

    Raises:
        NoRepositoryError: nothing in the metadata names a repository, with what was tried.
    """
    mirrors = mirrors or {}
    configured = _override(project, overrides or {})
    if configured:
        return Location(apply_mirrors(configured, mirrors), configured, "override")
    pairs, home, description = project_urls(metadata_text or "")
    tried: list[str] = []
    candidates = _candidates(pairs, home, description, tried)
    for found_in, url in candidates:
        if url:
            return Location(apply_mirrors(url, mirrors), url, found_in, tuple(tried))
    raise NoRepositoryError(
        f"{project}: no repository URL in the metadata"
        + (f" (tried {'; '.join(tried[:10])})" if tried else " (no Project-URL or Home-page)")
        + "; configure one with REBUILDER_SOURCE_OVERRIDES"
    )


def _candidates(
    pairs: list[tuple[str, str]], home: str | None, description: str, tried: list[str]
) -> list[tuple[str, str]]:
    """(how found, url) of every repository candidate, best first; ``tried`` is filled."""
    candidates: list[tuple[str, str]] = []
    for label, url in pairs:
        tried.append(f"Project-URL {label}: {url}")
        if normalize_label(label) in SOURCE_LABELS:
            repo = forge_repository(url)
            candidates.append((f"Project-URL: {label}", repo or _plain_url(url)))
    for label, url in pairs:
        if normalize_label(label) in HOMEPAGE_LABELS:
            repo = forge_repository(url)
            if repo:
                candidates.append((f"Project-URL: {label}", repo))
    if home:
        tried.append(f"Home-page: {home}")
        repo = forge_repository(home)
        if repo:
            candidates.append(("Home-page", repo))
    for label, url in pairs:  # any other label pointing into a forge (Issues, Changelog...)
        repo = forge_repository(url)
        if repo:
            candidates.append((f"Project-URL: {label}", repo))
    for url in _URL_IN_TEXT.findall(description)[:200]:
        repo = forge_repository(url.rstrip(".,;:"))
        if repo:
            tried.append(f"description: {url}")
            candidates.append(("description", repo))
    return candidates


def _plain_url(url: str) -> str:
    """A non-forge URL given under a source label, if it can be cloned at all."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if parts.scheme not in {"https", "http", "file"} or not (parts.netloc or parts.path):
        return ""
    return url.strip().rstrip("/")
