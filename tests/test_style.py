"""The codebase's lint, per pyproject.toml: ruff (pyflakes' and pycodestyle's rules) and isort's order."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("asr", "pipelines", "scripts", "tests")


def run(tool: str, *arguments: str, folder: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m tool arguments...` in `folder`, where its pyproject.toml configures the tool."""
    return subprocess.run([sys.executable, "-m", tool, *arguments], cwd=folder, capture_output=True,
                          text=True, timeout=120)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", *FOLDERS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_imports_in_order():
    result = run("isort", "--check-only", "--diff", *FOLDERS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_misordered_import_an_unused_name_or_a_long_line_fails(tmp_path):
    shutil.copytree(ROOT / "asr", tmp_path / "asr", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    module = tmp_path / "asr" / "text.py"
    source = module.read_text(encoding="utf-8")
    module.write_text(source.replace("from __future__ import annotations\n",
                                     "from __future__ import annotations\n\nimport sys\nimport os\n", 1)
                      + f"LONG = {'1' * 110!r}\n",
                      encoding="utf-8")
    found = run("ruff", "check", "--no-cache", "asr", folder=tmp_path).stdout
    assert "`os` imported but unused" in found and "E501" in found
    assert "asr/text.py" in run("isort", "--check-only", "asr", folder=tmp_path).stderr
