"""The project's set-up promises: two commands, CI, conda parity, ignored output."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {}
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(spec)
        wanted[normalise(req.name)] = str(req.specifier)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict) or dep.startswith(("python=", "pip")):
            continue
        req = Requirement(dep)
        have[normalise(CONDA_TO_PYPI.get(req.name, req.name))] = str(req.specifier)
    assert have == wanted


def test_constraints_pin_every_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pinned[normalise(req.name)] = req
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(spec)
        assert normalise(req.name) in pinned, req.name
        version = next(iter(pinned[normalise(req.name)].specifier)).version
        assert req.specifier.contains(version), (req, version)


def test_readme_quick_start_is_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    assert block.split("\n")[:2] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    assert "set -euo pipefail" in ci


def test_ci_runs_lint_and_types_before_the_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    static = re.search(r"^make check-static$", ci, re.M)
    assert static and static.start() < ci.index("\nmake test\n")
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "check-static"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "ruff check ." in dry and "mypy alphatrade_lab" in dry


def test_makefile_targets():
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "demo"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "pip install" in dry and "alphatrade-lab demo" in dry
    for target in ("test", "lab", "bench", "lint", "types", "check-static", "check"):
        subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, check=True)


def test_generated_output_is_ignored():
    for path in ("runs/demo-x/report.md", "data/lab.duckdb", ".venv/bin/python",
                 "data/generated/x.parquet"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path
    assert subprocess.run(["git", "check-ignore", "-q", "data/sample_bars.parquet"],
                          cwd=ROOT).returncode == 1
