"""``verbatim taxonomy validate|export|import|diff`` through the real command line (in-process).

Problems come with line and path on standard error and a non-zero exit; exports load back with
``load_taxonomy``; an import into a tenant's database adds versions that export again; diffs print
the added, renamed and merged nodes and where old labels go.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from taxonomy_support import default_doc, default_yaml, edited, to_yaml
from typer.testing import CliRunner

from models.taxonomy import default_taxonomy, load_taxonomy
from service.cli import app
from service.storage import make_engine, make_session_factory, upgrade_database
from service.storage.keys import get_or_create_tenant


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner on a fresh home with tenant ``acme``."""
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VERBATIM_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'home' / 'verbatim.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        get_or_create_tenant(session, "acme")
    engine.dispose()
    return CliRunner()


def run(cli: CliRunner, *args: str):
    return cli.invoke(app, ["taxonomy", *args])


def test_validate_accepts_a_good_file_and_lists_each_problem_of_a_broken_one(
    cli: CliRunner, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(default_yaml("acme-cem"), encoding="utf-8")
    result = run(cli, "validate", str(good))
    assert result.exit_code == 0, result.output
    assert "valid, 0 warning(s)" in result.stderr
    text = default_yaml("acme-cem").replace("en: Quality", "fr: Qualité", 1)
    text = text.replace("- fulfil", "- checkout", 1)
    broken = tmp_path / "破损.yaml"
    broken.write_text(text, encoding="utf-8")
    result = run(cli, "validate", str(broken))
    assert result.exit_code == 1
    lines = text.splitlines()
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{broken}: line")]
    assert len(errors) >= 3, result.stderr  # missing en, unknown fr, unknown touchpoint
    assert any(".name.en" in line for line in errors) and any(".name.fr" in line for line in errors)
    checkout = next(line for line in errors if "checkout" in line)
    number = int(checkout.split("line ")[1].split(",")[0])
    assert "checkout" in lines[number - 1]  # the line points at the bad value
    assert "invalid, " in result.stderr and result.stdout == ""


def test_validate_passes_with_warnings_and_fails_on_a_missing_file(
    cli: CliRunner, tmp_path: Path
) -> None:
    doc = default_doc("acme-cem")
    doc["topics"][1]["seeds"]["zh"] = doc["topics"][1]["seeds"]["zh"][:2]
    few = tmp_path / "few.yaml"
    few.write_text(to_yaml(doc), encoding="utf-8")
    result = run(cli, "validate", str(few))
    assert (
        result.exit_code == 0
        and "warning" in result.stderr
        and "valid, 1 warning(s)" in result.stderr
    )
    missing = run(cli, "validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1 and "No such file" in missing.stderr


def test_export_default_round_trips_through_load_taxonomy(cli: CliRunner, tmp_path: Path) -> None:
    result = run(cli, "export", "--default")
    assert result.exit_code == 0, result.output
    assert load_taxonomy(result.stdout) == default_taxonomy()
    out = tmp_path / "default.yaml"
    assert run(cli, "export", "--default", "-o", str(out)).exit_code == 0
    assert load_taxonomy(out) == default_taxonomy()
    assert "默认客户体验分类体系" in out.read_text(encoding="utf-8")
    assert run(cli, "export").exit_code == 1  # neither --default nor --tenant/--id


def test_import_then_export_and_a_second_import_adds_a_version(
    cli: CliRunner, tmp_path: Path
) -> None:
    v1, v2 = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    v1.write_text(default_yaml("acme-cem"), encoding="utf-8")
    v2.write_text(to_yaml(edited(default_doc("acme-cem"))), encoding="utf-8")
    first = run(cli, "import", str(v1), "--tenant", "acme")
    assert first.exit_code == 0, first.output
    tax_id, version = first.stdout.split()
    assert tax_id.startswith("tax_") and version == "1"
    second = run(cli, "import", str(v2), "--tenant", "acme", "-m", "加入食品安全")
    assert second.stdout.split() == [tax_id, "2"]
    again = run(cli, "import", str(v2), "--tenant", "acme", "--id", tax_id)
    assert again.stdout.split() == [tax_id, "2"] and "unchanged" in again.stderr
    current = run(cli, "export", "--tenant", "acme", "--id", "acme-cem")
    loaded = load_taxonomy(current.stdout)
    assert loaded.version == 2 and "food_safety.allergens" in loaded.leaf_ids
    first_version = run(cli, "export", "--tenant", "acme", "--id", tax_id, "--version", "1")
    assert load_taxonomy(first_version.stdout).content_hash() == default_taxonomy().content_hash()
    stored = run(cli, "diff", "--tenant", "acme", "--id", tax_id)
    assert stored.stdout.splitlines()[0].startswith("acme-cem v1 -> acme-cem v2")
    unknown = run(cli, "import", str(v1), "--tenant", "nobody")
    assert unknown.exit_code == 1 and "No tenant named 'nobody'" in unknown.stderr
    other = run(cli, "export", "--tenant", "acme", "--id", "acme-cem", "--version", "7")
    assert other.exit_code == 1 and "no version 7" in other.stderr


def test_diff_of_two_files_prints_added_renamed_and_merged_lines(
    cli: CliRunner, tmp_path: Path
) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(default_yaml("acme-cem"), encoding="utf-8")
    new.write_text(to_yaml(edited(default_doc("acme-cem"))), encoding="utf-8")
    result = run(cli, "diff", str(old), str(new))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "2 added" in lines[0] and "1 renamed" in lines[0] and "1 merged" in lines[0]
    assert "+ topic food_safety.allergens added: 过敏原 / Allergens" in lines
    assert any(
        line.startswith("~ topic delivery.courier renamed: zh '快递员/骑手' -> '配送员'")
        for line in lines
    )
    assert "> topic price.promotion merged into price.value" in lines
    assert "labels topic price.promotion -> price.value" in lines
    assert run(cli, "diff", str(old)).exit_code == 1  # one file alone is a usage error
