"""The project installs itself: environment.yml agrees with pyproject.toml; the CLI entry point exists."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"soundfile": "pysoundfile"}  # conda-forge spells a few packages differently
PIP_ONLY = {"torch"}  # pinned CPU/CUDA wheel from PyPI, so it sits in the pip section


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$", requirement.strip()).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"])
    for extra in ("embeddings", "cnn", "language", "lab", "test"):
        wanted.update(_split(r) for r in project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = dict(_split(d) for d in env if isinstance(d, str) and not d.startswith(("python", "pip")))
    pip = dict(_split(d) for d in next(d for d in env if isinstance(d, dict))["pip"] if not d.startswith("-e"))
    declared = conda | pip
    for name, spec in wanted.items():
        where = pip if name in PIP_ONLY else declared
        key = CONDA_NAMES.get(name, name)
        assert key in where, f"{name} is in pyproject.toml but not in environment.yml"
        assert where[key] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {where[key]!r}"
    extra = set(declared) - {CONDA_NAMES.get(n, n) for n in wanted}
    assert not extra, f"environment.yml declares packages pyproject.toml does not: {extra}"


def test_torch_is_pinned_and_console_script_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    assert project["scripts"]["mmwork"] == "mmwork.cli:main"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_imported_package_is_declared():
    """Each third-party module that mmwork imports comes from a distribution pyproject.toml names."""
    import ast
    import sys
    from importlib.metadata import packages_distributions
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_split(r)[0].replace("_", "-") for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {_split(r)[0].replace("_", "-") for r in extra if not r.startswith("mmwork")}
    imported = set()
    for path in (ROOT / "mmwork").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"mmwork", "__future__"}
    owners = packages_distributions()
    undeclared = {m: owners.get(m) for m in third_party
                  if not {d.lower().replace("_", "-") for d in owners.get(m, [m])} & declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
