"""The documentation says what the code does."""

from __future__ import annotations

from pathlib import Path

from ptce.settings_doc import render_settings_table

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_table_is_current() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    start = text.index("<!-- settings-table:start -->\n") + len("<!-- settings-table:start -->\n")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end] == render_settings_table(), (
        "docs/configuration.md is stale: put `ptce settings doc` output between the markers"
    )


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_commands = [line.strip() for line in readme.splitlines() if line.startswith("make ")]
    assert first_commands[:2] == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
