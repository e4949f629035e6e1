"""The shape of the code (docs/architecture.md), checked like behaviour is."""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "rebuilder", "scheduler", "reports")
MAX_PROTOCOL_METHODS = 12


def _protocols() -> dict[str, int]:
    """Every Protocol class of the packages and its method count, inherited ones included."""
    counts: dict[str, int] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            classes = {
                node.name: node
                for node in ast.parse(path.read_text(encoding="utf-8")).body
                if isinstance(node, ast.ClassDef)
            }

            def methods(node: ast.ClassDef, classes: dict[str, ast.ClassDef] = classes) -> set[str]:
                own = {
                    item.name
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                }
                for base in node.bases:
                    if isinstance(base, ast.Name) and base.id in classes:
                        own |= methods(classes[base.id])
                return own

            for name, node in classes.items():
                if any(isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases):
                    counts[f"{path.relative_to(ROOT)}:{name}"] = len(methods(node))
    return counts


def test_no_protocol_has_more_than_twelve_methods() -> None:
    counts = _protocols()
    assert "rebuilder/store/protocols.py:WorkerStore" in counts  # the walk finds them
    assert counts["rebuilder/campaigns/store.py:CampaignStarter"] > 2  # inherited count
    too_big = {name: n for name, n in counts.items() if n > MAX_PROTOCOL_METHODS}
    assert too_big == {}, "split these by consumer (docs/architecture.md)"


def test_imports_point_one_way_without_cycles() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]'")
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:]


HEAVY = ("pydantic", "rich", "psycopg", "dramatiq", "docker", "pypi_simple", "cryptography")


def test_building_the_parser_imports_no_heavy_library() -> None:
    code = (
        "import sys; import cli.main; cli.main._parser(); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", "import it inside the command (docs/architecture.md)"


class _NoProject(BaseHTTPRequestHandler):
    """An index that knows no project."""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


CHECK_UNTIL_FIRST_REQUEST = ("pydantic", "docker", "pypi_simple", "cryptography", "psycopg")


def test_check_imports_no_adapter_library_before_its_first_request(tmp_path: Path) -> None:
    """``check`` of a project the index lacks: settings, one request, exit 2 (start-up).

    Docker, the signing key and the page parser are imported when first needed, after the
    first request (docs/architecture.md, "Commands import only what they use").
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoProject)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    code = (
        "import sys; from cli.main import main; "
        f"status = main(['check', '--out', {str(tmp_path / 'out')!r}, 'demo==1.0']); "
        "loaded = {m.split('.')[0] for m in sys.modules}; "
        f"print(status, sorted(loaded & set({CHECK_UNTIL_FIRST_REQUEST!r})))"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.lower().startswith("rebuilder_")},
        "REBUILDER_INDEX_URL": f"http://127.0.0.1:{server.server_port}/simple/",
        "REBUILDER_CACHE_DIR": str(tmp_path / "cache"),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert "not found" in done.stderr  # it asked the index
    assert done.stdout.strip() == "2 []", "import it where first needed (docs/architecture.md)"


def test_every_command_has_a_home_in_the_command_table() -> None:
    from cli import main  # noqa: PLC0415 - the table is what this test reads

    parser = main._parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(main._COMMANDS)
    for name in main._COMMANDS:
        assert callable(main._command(name)), name


# Building these is wiring: only the composition root (cli/) does it; the packages below
# get what these make as arguments (docs/architecture.md, "Where wiring lives").
ADAPTER_FACTORIES = frozenset(
    {
        "PostgresStore",
        "PostgresCampaignStore",
        "PostgresSourceChecks",
        "PostgresExportSource",
        "PostgresLeafStore",
        "TransparencyLog",
        "Leadership",
        "BlobStore",
        "open_pool",
        "new_pool",
        "SimpleIndex",
        "UvResolver",
        "make_session",
        "DockerSandbox",
        "from_env",
        "GitCloner",
        "GitRebuilder",
        "RabbitmqBroker",
        "rabbitmq_broker",
        "load_or_create_key",
        "LocalKeySigner",
    }
)
WIRED_ONLY_IN_CLI = ("scheduler", "reports", "rebuilder/worker", "rebuilder/campaigns")


def adapter_calls(source: str) -> list[tuple[int, str]]:
    """(line, name) of every call in ``source`` that builds a concrete adapter."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name in ADAPTER_FACTORIES:
            found.append((node.lineno, name))
    return sorted(found)


def test_the_adapter_scan_sees_a_construction_however_it_is_spelled() -> None:
    twin = (
        "from rebuilder.store import repository\n"
        "import docker\n"
        "def route(pool):\n"
        "    repository.PostgresStore(pool).watch_add([])\n"
        "    return docker.from_env(), BlobStore(path)\n"
    )
    assert adapter_calls(twin) == [(4, "PostgresStore"), (5, "BlobStore"), (5, "from_env")]
    assert adapter_calls("def route(store):\n    return store.watch_add([])\n") == []


def test_only_the_composition_root_builds_adapters() -> None:
    scanned = []
    offenders = []
    for folder in WIRED_ONLY_IN_CLI:
        for path in sorted((ROOT / folder).rglob("*.py")):
            scanned.append(path)
            for line, name in adapter_calls(path.read_text(encoding="utf-8")):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}(...)")
    assert len(scanned) > 20  # the walk finds the packages
    assert offenders == [], "build it in cli/ and pass it in (docs/architecture.md)"
