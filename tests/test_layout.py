"""The README's layout table is the module map: import-linter enforces it, and the two agree."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def readme_levels() -> dict[int, set[str]]:
    """{level: asr module and package names} from the README's table."""
    section = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    modules = ({path.stem for path in ROOT.joinpath("asr").glob("*.py")}
               | {path.parent.name for path in ROOT.joinpath("asr").glob("*/__init__.py")})
    return {int(level): {name.rstrip("/") for name in re.findall(r"`([\w/]+)`", cell)} & modules
            for level, cell in re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.MULTILINE)}


def contract_levels() -> dict[int, set[str]]:
    """{level: module names} from the import-linter `layout` contract (listed top level first)."""
    config = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layout"]
    layers = contract["layers"][::-1]
    return {level: set(re.split(r"\s*[:|]\s*", layer)) for level, layer in enumerate(layers)}


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=folder, capture_output=True,
                          text=True, timeout=120)


def test_readme_table_and_import_contract_agree():
    assert readme_levels() == contract_levels()


def test_imports_keep_the_layout():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_or_unlisted_import_breaks_the_contract(tmp_path):
    for name in ("asr", "pipelines"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "asr" / "audio.py", "a") as audio:
        audio.write("from asr.training import train  # level 0 reaching up to level 5\n")
    (tmp_path / "asr" / "unlisted.py").write_text('"""A module nobody added to the table."""\n')
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "asr.audio is not allowed to import asr.training:" in result.stdout
    assert "asr.unlisted" in result.stdout
