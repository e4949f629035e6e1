"""The file page's verify commands quote every value that comes from a package."""

from __future__ import annotations

import shlex

from reports.verify_snippet import VerifyTarget, verify_commands

HOSTILE = "evil-1.0$(touch pwned)';`id`-py3-none-any.whl"


def test_a_hostile_file_name_stays_one_shell_word() -> None:
    text = verify_commands(
        VerifyTarget(
            base_url="http://127.0.0.1:8080/",
            file_id=3,
            filename=HOSTILE,
            sha256="a" * 64,
            file_url=f"https://files.example/{HOSTILE}",
            bundle_path=f"pypi/evil/1.0/{HOSTILE}/rebuild.intoto.jsonl",
        )
    )
    commands = [shlex.split(line) for line in text.splitlines() if not line.startswith("#")]
    download, check, mkdir, bundle, key, verify = commands
    assert download[:3] == ["curl", "-fsSL", "-o"] and download[3] == HOSTILE
    assert check[1] == f"{'a' * 64}  {HOSTILE}"
    assert mkdir == ["mkdir", "-p", f"attestations/pypi/evil/1.0/{HOSTILE}"]
    assert bundle[-1] == "http://127.0.0.1:8080/api/v1/files/3/bundle"
    assert "http://127.0.0.1:8080/api/v1/keys" in key
    assert verify[:3] == ["rebuilder", "verify", HOSTILE]


def test_without_an_http_address_the_download_step_says_what_to_do() -> None:
    text = verify_commands(
        VerifyTarget("http://h/", 1, "a-1.0-py3-none-any.whl", "b" * 64, None, "pypi/a/1.0/x")
    )
    assert "# (download a-1.0-py3-none-any.whl from the index into this folder)" in text
    assert "curl -fsSL" not in text


def test_a_line_break_in_a_name_cannot_leave_the_comment() -> None:
    text = verify_commands(
        VerifyTarget("http://h/", 1, "a\nrm -rf x\n.whl", "b" * 64, None, "pypi/a/1.0/x")
    )
    assert "rm -rf" not in text and text.startswith("# ") and text.count("\n") == 1
