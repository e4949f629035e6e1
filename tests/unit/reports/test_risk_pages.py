"""Risk on the status site: the home list's filters and column, the file page leading
with the diagnosis, the feed and the API ranking mismatches to review first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.postgres import database_url
from tests.support.web import make_app
from tests.support.webdata import (
    BENIGN,
    HOSTILE_PATH,
    RISKY,
    Fixture,
    add_risk_mismatches,
    schema_with_data,
    settings_for,
)

__all__ = ["database_url"]


@pytest.fixture(scope="module")
def web_data(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    for data in schema_with_data(database_url, tmp_path_factory.mktemp("data") / "blobs"):
        add_risk_mismatches(data)
        yield data


@pytest.fixture(scope="module")
def client(web_data: Fixture) -> Iterator[TestClient]:
    with TestClient(make_app(settings_for(web_data), web_data.pool)) as test_client:
        yield test_client


def _latest_section(text: str) -> str:
    return text.split('<section id="latest">', 1)[1].split("</section>", 1)[0]


def test_home_list_is_by_finish_time_with_a_risk_column(client: TestClient) -> None:
    latest = _latest_section(client.get("/").text)
    assert "<th>Risk</th>" in latest
    # benign finished 5 minutes ago, risky an hour ago: newest first.
    assert latest.index(BENIGN) < latest.index(RISKY)
    assert 'class="risk r-packaging"' in latest and 'class="risk r-review"' in latest


def test_home_list_filters_by_risk_and_verdict(client: TestClient) -> None:
    review = _latest_section(client.get("/", params={"risk": "review"}).text)
    assert RISKY in review and BENIGN not in review
    packaging = _latest_section(
        client.get("/", params={"verdict": "mismatch", "risk": "packaging"}).text
    )
    assert BENIGN in packaging and RISKY not in packaging
    none = _latest_section(client.get("/", params={"verdict": "failed", "risk": "review"}).text)
    assert "No file matches this filter." in none
    # An unknown filter value is ignored, not an error or an injection.
    junk = client.get("/", params={"risk": "<b>x</b>"})
    assert junk.status_code == 200 and "<b>x</b>" not in junk.text


def test_new_mismatches_rank_review_first(client: TestClient) -> None:
    text = client.get("/").text
    new = text.split("<h2>New mismatches</h2>", 1)[1].split("</section>", 1)[0]
    assert new.index(RISKY) < new.index(BENIGN)  # although benign is newer


def test_file_page_leads_with_the_diagnosis_and_an_escaped_diff(
    client: TestClient, web_data: Fixture
) -> None:
    text = client.get(f"/files/{web_data.files[RISKY]}").text
    assert text.index("Why it differs") < text.index("What was compared")
    assert text.index("Why it differs") < text.index("Differences by path")
    assert "module differs &lt;b&gt;bold&lt;/b&gt;" in text
    assert HOSTILE_PATH not in text
    assert "&lt;/pre&gt;&lt;script&gt;alert(&#39;d&#39;)" in text  # the diff, escaped
    assert "<script>alert('d')" not in text


def test_feed_ranks_review_first_and_names_the_risk(client: TestClient) -> None:
    feed = client.get("/feeds/problems.atom").text
    assert feed.index("risky 1.0: mismatch (risk review)") < feed.index(
        "benign 1.0: mismatch (risk packaging)"
    )
    assert '<category term="risk:review"/>' in feed


def test_api_verdicts_carry_the_risk(client: TestClient) -> None:
    items = client.get("/api/v1/verdicts", params={"verdict": "mismatch"}).json()["items"]
    risks = {item["filename"]: item["risk"] for item in items}
    assert risks[RISKY] == "review" and risks[BENIGN] == "packaging"


def test_api_verdicts_filter_by_risk(client: TestClient) -> None:
    review = client.get("/api/v1/verdicts", params={"risk": "review"}).json()["items"]
    assert [item["filename"] for item in review] == [RISKY]
    assert client.get("/api/v1/verdicts", params={"risk": "fine"}).status_code == 422


def test_api_attempt_carries_the_diagnosis(client: TestClient, web_data: Fixture) -> None:
    attempt = client.get(f"/api/v1/attempts/{web_data.attempts['risky']}").json()
    assert attempt["risk"] == "review"
    assert attempt["diagnosis"][0]["cause"] == "code"
    assert attempt["diagnosis"][0]["path"] == HOSTILE_PATH  # JSON: data, not markup
