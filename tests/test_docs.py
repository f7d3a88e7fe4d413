"""The documentation cannot drift from the code: the schema docs are the CLI's own output, and the README's
first two commands are the set-up + demo and the set-up + the CI test command."""

from pathlib import Path

from talkbench.cli.main import main
from talkbench.manifests import TABLES

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_docs_match_cli_output(capsys):
    assert main(["manifests", "schema", "--markdown"]) == 0
    printed = capsys.readouterr().out
    assert printed == (ROOT / "docs" / "manifests.md").read_text()
    for name in TABLES:
        assert f"## `{name}`" in printed


def test_readme_opens_with_demo_and_test_commands():
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in text.split("```") if b.startswith("bash\n")]
    first, second = blocks[0], blocks[1]
    assert "scripts/setup.sh" in first and "talkbench demo run" in first
    assert "scripts/setup.sh" in second and "pytest" in second
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/setup.sh" in ci and "pytest" in ci
