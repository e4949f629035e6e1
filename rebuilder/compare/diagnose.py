"""Diagnose a mismatch: for every differing path, a cause proven by analysis, and a risk.

Each rule *tests* a hypothesis on the two sides' bytes and may fail; the path decides
only which hypotheses apply (what an installer does with the file: a module is
imported, a ``.pth`` file is executed at start-up, METADATA is read by resolvers), never
that a difference is benign. The taxonomy (``rebuilder.verdict.Cause``) is versioned by
``DIAGNOSIS_VERSION`` and documented in docs/diagnosis.md.

The inputs are the archives after every stabilizer, so each diagnosis is about what is
left once the proven-irrelevant aspects are set aside.
"""

from __future__ import annotations

import bz2
import configparser
import logging
import lzma
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from rebuilder.archive.zipread import ZipArchive
from rebuilder.compare.stabilizers import record_is_truthful
from rebuilder.verdict import Cause, Diagnosis, Difference, DifferenceKind, Risk

logger = logging.getLogger(__name__)

MAX_DECODED = 64 * 1024 * 1024  # a lossless transform is undone up to this many bytes
MAX_SOURCE_FILES = 20_000
_CODE_SUFFIXES = (".py", ".pyw")
_EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
# Core-metadata fields an installer acts on (resolution, installation, refusal).
INSTALLER_FIELDS = frozenset(
    {"name", "version", "requires-dist", "requires-python", "provides-extra", "requires-external"}
)
# WHEEL fields an installer acts on.
WHEEL_INSTALLER_FIELDS = frozenset({"root-is-purelib", "tag", "build"})
_MAJOR_VERSIONED = frozenset({"metadata-version", "wheel-version"})


class SourceFiles:
    """The sdist's files (relative to its top folder), listed and read only when asked,
    to answer "does the sdist contain this?" by name and content, wherever it is."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._files: dict[str, Path] | None = None

    @classmethod
    def from_dir(cls, root: Path | None) -> SourceFiles | None:
        return None if root is None else cls(root)

    @property
    def files(self) -> Mapping[str, Path]:
        if self._files is None:
            found: dict[str, Path] = {}
            for path in sorted(self._root.rglob("*")) if self._root.is_dir() else ():
                if len(found) >= MAX_SOURCE_FILES:
                    logger.warning("sdist has over %s files: the rest not compared", len(found))
                    break
                if path.is_file() and not path.is_symlink():
                    found[path.relative_to(self._root).as_posix()] = path
            self._files = found
        return self._files

    def holding(self, data: bytes, named: str | None = None) -> str | None:
        """A path of the sdist whose bytes are exactly ``data`` (and whose file name is
        ``named``, when given: small files such as empty ones match anything by bytes)."""
        for name, path in self.files.items():
            if named is not None and name.rsplit("/", 1)[-1] != named:
                continue
            try:
                if path.stat().st_size == len(data) and path.read_bytes() == data:
                    return name
            except OSError:
                continue
        return None


@dataclass(frozen=True)
class _Sides:
    published: ZipArchive
    rebuilt: ZipArchive
    source: SourceFiles | None
    ours: Mapping[str, bytes]
    theirs: Mapping[str, bytes]


Make = Callable[[Cause, str, Risk], Diagnosis]


def diagnose(
    published: ZipArchive,
    rebuilt: ZipArchive,
    differences: Iterable[Difference],
    source: SourceFiles | None = None,
    *,
    written_on_windows: bool = False,
) -> tuple[Diagnosis, ...]:
    """One diagnosis per difference (published and rebuilt are the stabilized archives).

    ``written_on_windows``: the published archive's own entries say so (see
    :func:`written_on_windows`); line-ending differences then name that origin.
    """
    sides = _Sides(
        published,
        rebuilt,
        source,
        {e.name: e.data for e in published.entries},
        {e.name: e.data for e in rebuilt.entries},
    )
    found = []
    for diff in differences:
        try:
            one = _diagnose_one(diff, sides)
            if written_on_windows and one.cause is Cause.LINE_ENDINGS:
                one = replace(one, detail=f"{one.detail}; {_WINDOWS}")
            found.append(one)
        except Exception:  # a rule's own bug must not hide the mismatch: say so
            logger.exception("diagnosing %s failed", diff.path)
            found.append(
                Diagnosis(diff.path, diff.kind, Cause.UNKNOWN, "the analysis failed", Risk.REVIEW)
            )
    return tuple(found)


_WINDOWS = (
    "the published wheel was written on Windows (zip made-by system 0 on every entry), "
    "where text files written in text mode end their lines with CRLF"
)


def written_on_windows(published: ZipArchive, rebuilt: ZipArchive) -> bool:
    """Every entry of the published archive was made by MS-DOS/Windows (zip "version made
    by" system 0) and not every entry of the rebuilt one was: the original build ran on
    Windows, which no sandbox image here reproduces."""
    return (
        bool(published.entries)
        and all(e.create_system == 0 for e in published.entries)
        and not all(e.create_system == 0 for e in rebuilt.entries)
    )


def _diagnose_one(diff: Difference, sides: _Sides) -> Diagnosis:
    path = diff.path

    def make(cause: Cause, detail: str, risk: Risk) -> Diagnosis:
        return Diagnosis(path, diff.kind, cause, detail, risk)

    if diff.kind is DifferenceKind.ADDED:
        return _only_published(path, sides.ours[path], sides.theirs, sides.source, make)
    if diff.kind is DifferenceKind.REMOVED:
        return _only_rebuilt(path, sides.theirs[path], sides.ours, sides.source, make)
    if path not in sides.ours or path not in sides.theirs:
        return make(Cause.UNKNOWN, "the archives differ outside every path", Risk.REVIEW)
    if file_role(path) == "record":
        return _record(path, sides.published, sides.rebuilt, make)
    return _both_sides(path, sides.ours[path], sides.theirs[path], make)


def _both_sides(path: str, a: bytes, b: bytes, make: Make) -> Diagnosis:
    role = file_role(path)
    transformed = _transformed_equal(a, b)
    if transformed:
        return make(Cause.TRANSFORMED_EQUAL, transformed, Risk.PACKAGING)
    if role in {"metadata", "wheel", "entry-points"}:
        return _entry_points(a, b, make) if role == "entry-points" else _metadata(a, b, role, make)
    text = _text_cause(a, b)
    if role == "dist-info":
        return _dist_info(path, a, b, text, make)
    if role in {"module", "pth", "script", "extension"}:
        return _code(role, text, make)
    if text is not None:
        # Line order is proven irrelevant only where a format says so (METADATA's
        # multi-use fields, entry points): in another file it may be behaviour.
        risk = Risk.REVIEW if text is Cause.ORDER_ONLY else Risk.PACKAGING
        return make(text, _TEXT_DETAIL[text], risk)
    return make(Cause.DATA, f"{_size_change(a, b)}: a data file's content differs", Risk.REVIEW)


# Read at run time by pkg_resources to declare namespace packages: code, not metadata.
_RUNTIME_DIST_INFO = frozenset({"namespace_packages.txt"})


def _dist_info(path: str, a: bytes, b: bytes, text: Cause | None, make: Make) -> Diagnosis:
    """Another file of ``*.dist-info`` (top_level.txt, metadata.json, license texts ...):
    installers read METADATA, WHEEL, RECORD and entry_points.txt only."""
    name = path.rsplit("/", 1)[-1]
    if name in _RUNTIME_DIST_INFO:
        how = f" ({text.value})" if text else ""
        return make(Cause.CODE, f"{name} differs{how}: read at run time", Risk.REVIEW)
    if text is not None:
        return make(text, f"{name}: {_TEXT_DETAIL[text]}", Risk.PACKAGING)
    old, new = Counter(_strip_ws(a).split(b"\n")), Counter(_strip_ws(b).split(b"\n"))
    gone = sorted(x.decode("utf-8", "replace") for x in (old - new).elements())
    added = sorted(x.decode("utf-8", "replace") for x in (new - old).elements())
    return make(
        Cause.METADATA_FIELD,
        f"{name}, a file no installer reads: lines {_show(gone)} -> {_show(added)}",
        Risk.PACKAGING,
    )


def _code(role: str, text: Cause | None, make: Make) -> Diagnosis:
    if role == "extension":
        return make(Cause.CODE, "compiled extension differs", Risk.REVIEW)
    if text is Cause.LINE_ENDINGS:
        return make(
            Cause.LINE_ENDINGS,
            f"{role}: only CRLF/LF differ (Python reads both as the same text)",
            Risk.PACKAGING,
        )
    how = f" ({text.value}: the same text otherwise)" if text else ""
    return make(Cause.CODE, f"{role} differs{how}", Risk.REVIEW)


_TEXT_DETAIL = {
    Cause.LINE_ENDINGS: "only CRLF/LF line endings differ",
    Cause.WHITESPACE: "only a BOM, trailing whitespace or blank lines differ",
    Cause.ORDER_ONLY: "the same lines in another order",
}


def file_role(path: str) -> str:
    """What an installer does with ``path`` (decides which rules apply, never the verdict)."""
    parts = path.split("/")
    top = parts[0]
    name = parts[-1]
    if len(parts) >= 2 and top.endswith(".dist-info"):
        # Nothing in dist-info is imported or run; installers read these four.
        known = {"METADATA": "metadata", "WHEEL": "wheel", "RECORD": "record"}
        known["entry_points.txt"] = "entry-points"
        return known.get(name, "dist-info") if len(parts) == 2 else "dist-info"
    if top.endswith(".data") and len(parts) >= 3 and parts[1] == "scripts":
        return "script"
    if name.endswith(".pth") and (len(parts) == 1 or (top.endswith(".data") and len(parts) == 3)):
        return "pth"
    if name.endswith(_CODE_SUFFIXES):
        return "module"
    if name.endswith(_EXTENSION_SUFFIXES) or ".so." in name:
        return "extension"
    return "data"


def _is_code(path: str) -> bool:
    return file_role(path) in {"module", "pth", "script", "extension", "entry-points"}


def _only_published(
    path: str,
    data: bytes,
    theirs: Mapping[str, bytes],
    source: SourceFiles | None,
    make: Make,
) -> Diagnosis:
    explained = _renamed_pth(path, data, theirs) or _decoded_elsewhere(data, theirs, source)
    if explained is not None:
        cause = Cause.ONLY_PUBLISHED if "runs whatever" in explained else Cause.TRANSFORMED_EQUAL
        return make(cause, explained, Risk.PACKAGING)
    role = file_role(path)
    if source is None:
        return make(Cause.ONLY_PUBLISHED, "the sdist could not be searched", Risk.REVIEW)
    in_source = source.holding(data, named=path.rsplit("/", 1)[-1])
    inert = role == "dist-info" and path.rsplit("/", 1)[-1] not in _RUNTIME_DIST_INFO
    if in_source is None:
        risk = Risk.PACKAGING if inert else Risk.REVIEW
        note = ", a file no installer reads" if inert else ""
        return make(Cause.ONLY_PUBLISHED, f"{role} file the sdist does not contain{note}", risk)
    if role in {"pth", "entry-points"}:
        return make(
            Cause.ONLY_PUBLISHED,
            f"{role} file (in the sdist as {in_source}) that the rebuild does not install",
            Risk.REVIEW,
        )
    return make(
        Cause.ONLY_PUBLISHED,
        f"the sdist contains it as {in_source} (same name and bytes); the rebuild left it out",
        Risk.PACKAGING,
    )


def _decoded_elsewhere(
    data: bytes, theirs: Mapping[str, bytes], source: SourceFiles | None
) -> str | None:
    """A lossless transform of a file of the rebuild or of the sdist, if ``data`` is one."""
    decoded = _decode(data)
    if decoded is None or not decoded[1]:
        return None
    codec, plain = decoded
    rebuilt_match = next((n for n, d in theirs.items() if d == plain), None)
    if rebuilt_match is not None:
        return f"{codec} of the rebuild's {rebuilt_match} (decoded bytes equal)"
    in_source = source.holding(plain) if source else None
    if in_source is not None:
        return f"{codec} of the sdist's {in_source} (decoded bytes equal)"
    return None


def _only_rebuilt(
    path: str,
    data: bytes,
    ours: Mapping[str, bytes],
    source: SourceFiles | None,
    make: Make,
) -> Diagnosis:
    renamed = _renamed_pth(path, data, ours, side="published wheel")
    if renamed is not None:
        return make(Cause.ONLY_REBUILT, renamed, Risk.PACKAGING)
    for name, published in ours.items():
        decoded = _decode(published)
        if decoded is not None and decoded[1] and decoded[1] == data:
            return make(
                Cause.TRANSFORMED_EQUAL,
                f"the published wheel holds it as {name} ({decoded[0]}, decoded bytes equal)",
                Risk.PACKAGING,
            )
    in_source = source.holding(data, named=path.rsplit("/", 1)[-1]) if source else None
    where = f"the sdist contains it as {in_source}" if in_source else "not a file of the sdist"
    # The published wheel installs less than its source: nothing runs that the source
    # does not show, but a left-out file can change behaviour when it is code.
    risk = Risk.REVIEW if _is_code(path) else Risk.PACKAGING
    return make(Cause.ONLY_REBUILT, f"{where}; the published wheel lacks it", risk)


def _renamed_pth(
    path: str, data: bytes, other: Mapping[str, bytes], side: str = "rebuild"
) -> str | None:
    """A ``.pth`` file whose very bytes the other side has under another ``.pth`` name.

    ``site`` runs every top-level ``.pth`` file whatever its name, so the same bytes under
    another name run the same code (interpreter-versioned names such as ``-nspkg.pth``).
    """
    if file_role(path) != "pth":
        return None
    for name, other_data in other.items():
        if name != path and file_role(name) == "pth" and other_data == data:
            return f"the same bytes as the {side}'s {name} (a .pth runs whatever its name)"
    return None


def _record(
    path: str,
    published: ZipArchive,
    rebuilt: ZipArchive,
    make: Make,
) -> Diagnosis:
    if record_is_truthful(published, path) and record_is_truthful(rebuilt, path):
        return make(
            Cause.RECORD,
            "both RECORDs are truthful: it differs because the listed files do",
            Risk.PACKAGING,
        )
    return make(Cause.UNKNOWN, "a RECORD does not describe its own archive", Risk.REVIEW)


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def _decode(data: bytes) -> tuple[str, bytes] | None:
    """``(codec, decoded)`` when ``data`` is a whole gzip/bzip2/xz stream, else None."""
    for magic, codec in _MAGIC:
        if data.startswith(magic):
            plain = _bounded_decode(codec, data)
            return None if plain is None else (codec, plain)
    return None


def _bounded_decode(codec: str, data: bytes) -> bytes | None:
    try:
        if codec == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(data, MAX_DECODED)
            done = d.eof and not d.unconsumed_tail
        elif codec == "bzip2":
            b = bz2.BZ2Decompressor()
            out = b.decompress(data, MAX_DECODED)
            done = b.eof
        else:
            x = lzma.LZMADecompressor()
            out = x.decompress(data, MAX_DECODED)
            done = x.eof
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        return None
    return out if done else None


def _transformed_equal(a: bytes, b: bytes) -> str | None:
    da, db = _decode(a), _decode(b)
    if da and db and da[1] == db[1]:
        return f"both {da[0]}/{db[0]} streams decode to the same bytes"
    if da and da[1] == b:
        return f"the published file is {da[0]} of the rebuilt one (decoded bytes equal)"
    if db and db[1] == a:
        return f"the rebuilt file is {db[0]} of the published one (decoded bytes equal)"
    return None


def _lines(data: bytes) -> list[bytes]:
    return data.replace(b"\r\n", b"\n").split(b"\n")


def _strip_ws(data: bytes) -> bytes:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = [line.rstrip(b" \t\r") for line in _lines(data)]
    while lines and not lines[-1]:
        lines.pop()
    return b"\n".join(lines)


def _text_cause(a: bytes, b: bytes) -> Cause | None:
    """The benign text cause that explains all of ``a`` vs ``b``, if one does."""
    if a.replace(b"\r\n", b"\n") == b.replace(b"\r\n", b"\n"):
        return Cause.LINE_ENDINGS
    if _strip_ws(a) == _strip_ws(b):
        return Cause.WHITESPACE
    if Counter(_strip_ws(a).split(b"\n")) == Counter(_strip_ws(b).split(b"\n")):
        return Cause.ORDER_ONLY
    return None


def _size_change(a: bytes, b: bytes) -> str:
    return f"{len(a)} -> {len(b)} bytes"


# --- METADATA / WHEEL -------------------------------------------------------------


def parse_headers(data: bytes) -> tuple[list[tuple[str, str]], str] | None:
    """``([(field, value)], body)`` of an RFC 822-style file; None if not UTF-8 text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.replace("\r\n", "\n").split("\n")
    fields: list[tuple[str, str]] = []
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - the body starts after the loop
        if not line.strip():
            break
        if line[:1] in {" ", "\t"} and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + "\n" + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            return None
        fields.append((name.strip().lower(), value.strip()))
    else:
        index = len(lines)
    body = "\n".join(lines[index + 1 :])
    return fields, body


def _canonical_value(name: str, value: str) -> str:
    if name == "requires-dist":
        try:
            return str(Requirement(value))
        except InvalidRequirement:
            return value
    if name == "requires-python":
        return value.replace(" ", "")
    return value


def _metadata(a: bytes, b: bytes, role: str, make: Make) -> Diagnosis:
    # Lines alone prove nothing here (a line moved from the description into the
    # headers adds a field): the fields are parsed and compared as multisets.
    pa, pb = parse_headers(a), parse_headers(b)
    if pa is None or pb is None:
        return make(Cause.UNKNOWN, f"{role.upper()} cannot be parsed", Risk.REVIEW)
    (fa, body_a), (fb, body_b) = pa, pb
    installer = INSTALLER_FIELDS if role == "metadata" else WHEEL_INSTALLER_FIELDS
    changes: list[str] = []
    risky: list[str] = []
    # "description" is the body or a header (older writers); both are text for humans.
    names = sorted({n for n, _ in fa} | {n for n, _ in fb})
    for name in names:
        old = Counter(_canonical_value(name, v) for n, v in fa if n == name)
        new = Counter(_canonical_value(name, v) for n, v in fb if n == name)
        if old == new:
            continue
        gone, added = sorted((old - new).elements()), sorted((new - old).elements())
        changes.append(f"{name}: {_show(gone)} -> {_show(added)}")
        if name in installer or (name in _MAJOR_VERSIONED and _major(gone) != _major(added)):
            risky.append(name)
    if body_a != body_b:
        if _strip_ws(body_a.encode()) != _strip_ws(body_b.encode()):
            changes.append("description text")
        elif not changes:
            return make(
                Cause.WHITESPACE,
                f"{role.upper()}: only whitespace or blank lines of the description differ",
                Risk.PACKAGING,
            )
        else:
            changes.append("description: whitespace only")
    if not changes:  # the same fields and text, written differently
        text = _text_cause(a, b) or Cause.WHITESPACE
        how = _TEXT_DETAIL.get(text, "")
        return make(
            text,
            f"{role.upper()}: the same fields, values and description once parsed; {how}",
            Risk.PACKAGING,
        )
    detail = "; ".join(changes)
    if len(detail) > 600:
        detail = detail[:600] + "..."
    if risky:
        return make(
            Cause.METADATA_FIELD,
            f"installers act on {', '.join(risky)}: {detail}",
            Risk.REVIEW,
        )
    return make(Cause.METADATA_FIELD, detail, Risk.PACKAGING)


def _show(values: list[str]) -> str:
    if not values:
        return "(none)"
    shown = [v if len(v) <= 80 else v[:77] + "..." for v in values[:5]]
    more = f" +{len(values) - 5} more" if len(values) > 5 else ""
    return "[" + ", ".join(repr(v) for v in shown) + "]" + more


def _major(values: list[str]) -> set[str]:
    return {v.split(".", 1)[0].strip() for v in values}


def _entry_points(a: bytes, b: bytes, make: Make) -> Diagnosis:
    pa, pb = _parse_ini(a), _parse_ini(b)
    text = _text_cause(a, b)
    if pa is not None and pa == pb:
        cause = text or Cause.ORDER_ONLY
        return make(cause, "entry points: the same entry points once parsed", Risk.PACKAGING)
    if pa is None or pb is None:
        return make(Cause.CODE, "entry points differ (cannot be parsed)", Risk.REVIEW)
    changed = []
    for section in sorted(pa.keys() | pb.keys()):
        old, new = pa.get(section, {}), pb.get(section, {})
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                changed.append(f"[{section}] {key}: {old.get(key)} -> {new.get(key)}")
    return make(Cause.CODE, "entry points differ: " + "; ".join(changed[:10]), Risk.REVIEW)


def _parse_ini(data: bytes) -> dict[str, dict[str, str]] | None:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, configparser.Error):
        return None
    return {s: {k: v.strip() for k, v in parser[s].items()} for s in parser.sections()}
