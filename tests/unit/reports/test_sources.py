"""Source checks and operator keys on the status site, over a real migrated database."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from fastapi.testclient import TestClient
from markupsafe import escape

from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.keys import PublicKey, load_private_key
from reports.keys import operator_keys
from tests.support.web import make_app
from tests.support.webdata import (
    COMMIT,
    HOSTILE_DIFF,
    HOSTILE_REASON,
    HOSTILE_REPOSITORY,
    HOSTILE_RULE,
    HOSTILE_SOURCE_PATH,
    HOSTILE_TAG,
    HOSTILE_VERSION,
    SOURCE_REPOSITORY,
    Fixture,
    settings_for,
)

DEMO_1 = "demo_pkg-1.0-py3-none-any.whl"
DEMO_2 = "demo_pkg-2.0-py3-none-any.whl"


def _shown_as_text(text: str, *hostile: str) -> None:
    for value in hostile:
        assert value not in text, f"unescaped: {value!r}"
        assert str(escape(value)) in text, f"not shown: {value!r}"


def test_project_page_has_a_source_verdict_per_release(client: TestClient) -> None:
    text = client.get("/projects/demo-pkg").text
    assert "<th>Source</th>" in text
    rows = {
        version: cell
        for version, cell in re.findall(
            r'<th rowspan="\d+" scope="rowgroup">([^<]+)</th>\s*<td rowspan="\d+">(.*?)</td>', text
        )
    }
    assert 'href="/projects/demo-pkg/1.0/source"' in rows["1.0"]
    assert "s-consistent" in rows["1.0"]  # the latest check, not the inconsistent one before
    assert "s-inconsistent" in rows["2.0"]
    assert "not checked" in rows["1.1"]


def test_consistent_source_page(client: TestClient) -> None:
    answer = client.get("/projects/demo-pkg/1.0/source")
    assert answer.status_code == 200
    text = answer.text
    assert 'class="verdict s-consistent"' in text
    assert f'<a href="{SOURCE_REPOSITORY}" rel="nofollow noopener noreferrer">' in text
    assert f"<code>{COMMIT}</code>" in text and "<code>v1.0</code>" in text
    assert "<code>PKG-INFO</code></td><td><code>pkg-info@1</code>" in text
    assert "<td>7</td>" in text  # files only in git
    assert DEMO_1 in text and "reproducible" in text  # rebuilt from git
    assert "/api/v1/projects/demo-pkg/releases/1.0/source/bundle" in text
    assert "rebuilder check --source demo-pkg==1.0" in text
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.headers["x-frame-options"] == "DENY"


def test_hostile_source_check_is_shown_as_text(client: TestClient) -> None:
    text = client.get("/projects/demo-pkg/2.0/source").text
    assert 'class="verdict s-inconsistent"' in text
    _shown_as_text(text, HOSTILE_REPOSITORY, HOSTILE_TAG, HOSTILE_SOURCE_PATH, HOSTILE_RULE)
    _shown_as_text(text, HOSTILE_DIFF, "<b>r</b>")
    assert 'href="javascript:' not in text  # not an http(s) URL: text only, no link
    diff = text.split('<pre class="code diff">', 1)[1].split("</pre>", 1)[0]
    assert "&lt;/pre&gt;&lt;script&gt;" in diff
    assert "No signed statement for this check yet." in text


def test_failed_check_and_unchecked_release(client: TestClient) -> None:
    failed = client.get(f"/projects/evil/{quote(HOSTILE_VERSION, safe='')}/source")
    assert failed.status_code == 200
    _shown_as_text(failed.text, HOSTILE_REASON, HOSTILE_VERSION)
    assert "s-failed" in failed.text
    unchecked = client.get("/projects/demo-pkg/1.1/source")
    assert unchecked.status_code == 200
    assert "not checked" in unchecked.text
    assert "rebuilder check --source demo-pkg==1.1" in unchecked.text


def test_source_page_404s_and_redirects(client: TestClient) -> None:
    assert client.get("/projects/demo-pkg/9.9/source").status_code == 404
    assert client.get("/projects/nope/1.0/source").status_code == 404
    assert client.get("/projects/%2F%2Fevil/1.0/source").status_code == 404
    moved = client.get("/projects/Demo_Pkg/1.0/source", follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["location"] == "/projects/demo-pkg/1.0/source"


def test_file_page_has_the_source_line_and_the_key(client: TestClient, web_data: Fixture) -> None:
    text = client.get(f"/files/{web_data.files[DEMO_1]}").text
    line = text.split('<p class="source-line">', 1)[1].split("</p>", 1)[0]
    assert 'href="/projects/demo-pkg/1.0/source"' in line and "s-consistent" in line
    assert "OPERATOR-KEY.pem" not in text
    assert "--key operator-key.pem" in text
    assert 'href="/keys/operator-key.pem"' in text
    hostile = client.get(f"/files/{web_data.files[DEMO_2]}").text
    line = hostile.split('<p class="source-line">', 1)[1].split("</p>", 1)[0]
    _shown_as_text(line, HOSTILE_TAG)


def test_api_source_check(client: TestClient) -> None:
    answer = client.get("/api/v1/projects/Demo.Pkg/releases/2.0/source")
    assert answer.status_code == 200
    body = answer.json()
    assert body["verdict"] == "inconsistent"
    assert body["repository"] == HOSTILE_REPOSITORY and body["tag"] == HOSTILE_TAG
    assert body["result"]["differing"] == [{"path": HOSTILE_SOURCE_PATH, "kind": "content"}]
    assert set(body["evidence"]) == {"report.json", "diff.patch"}
    for missing in (
        "/api/v1/projects/demo-pkg/releases/1.1/source",
        "/api/v1/projects/demo-pkg/releases/9.9/source",
        "/api/v1/projects/demo-pkg/releases/2.0/source/bundle",
    ):
        gone = client.get(missing)
        assert gone.status_code == 404, missing
        assert gone.headers["content-type"] == "application/problem+json"


def test_api_source_bundle(client: TestClient) -> None:
    answer = client.get("/api/v1/projects/demo-pkg/releases/1.0/source")
    assert answer.json()["bundle"] == "/api/v1/projects/demo-pkg/releases/1.0/source/bundle"
    bundle = client.get(answer.json()["bundle"])
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "application/jsonl"
    assert 'filename="source.intoto.jsonl"' in bundle.headers["content-disposition"]
    lines = bundle.text.splitlines()
    assert len(lines) == 1 and '"payloadType":"application/vnd.in-toto+json"' in lines[0]


def test_openapi_documents_the_new_endpoints(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    source = paths["/api/v1/projects/{name}/releases/{version}/source"]["get"]
    assert "404" in source["responses"]
    assert (
        "SourceCheckOut"
        in source["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert (
        "application/jsonl"
        in paths["/api/v1/projects/{name}/releases/{version}/source/bundle"]["get"]["responses"][
            "200"
        ]["content"]
    )
    assert (
        "KeysOut"
        in paths["/api/v1/keys"]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]["$ref"]
    )


def test_keys_api_serves_the_public_key_only(client: TestClient, web_data: Fixture) -> None:
    private = web_data.blob_dir.parent / "keys" / "signing-key.pem"
    signer = load_private_key(private)
    keys = client.get("/api/v1/keys").json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["key_id"] == signer.key_id
    assert PublicKey.from_pem(key["pem"]).key_id == signer.key_id
    assert key["note_verifier"] == NoteVerifier("rebuilder.test", signer.public_key).vkey()
    everything = client.get("/api/v1/keys").text + client.get("/keys").text
    assert "PRIVATE KEY" not in everything
    page = client.get("/keys").text
    assert signer.key_id in page and "BEGIN PUBLIC KEY" in page
    download = client.get("/keys/operator-key.pem")
    assert download.status_code == 200
    assert PublicKey.from_pem(download.content).key_id == signer.key_id
    assert "PRIVATE" not in download.text
    assert 'href="/keys"' in client.get("/").text  # the footer links to the keys


def test_no_public_key_means_an_empty_list(web_data: Fixture, tmp_path: Path) -> None:
    settings = settings_for(web_data).model_copy(update={"signing_key": tmp_path / "none.pem"})
    assert operator_keys(settings) == []
    assert not (tmp_path / "none.pem").exists()  # never made by the web app
    app = make_app(settings, web_data.pool)
    with TestClient(app) as client:
        assert client.get("/api/v1/keys").json() == {"keys": []}
        assert client.get("/keys/operator-key.pem").status_code == 404
        file_page = client.get(f"/files/{web_data.files[DEMO_1]}").text
        assert 'href="/keys/operator-key.pem"' not in file_page
