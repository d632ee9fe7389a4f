"""Each stage imports only the stages below it: no import cycles between the library's parts."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmwork"
# stage -> the mmwork modules it must never import (those above it)
FORBIDDEN = {
    "interactions": {"mmwork.recommenders", "mmwork.evaluation", "mmwork.experiments", "mmwork.cli"},
    "recommenders": {"mmwork.evaluation", "mmwork.experiments", "mmwork.cli", "mmwork.reports"},
    "evaluation": {"mmwork.experiments", "mmwork.cli", "mmwork.reports"},
    "generators": {"mmwork.recommenders", "mmwork.evaluation", "mmwork.experiments", "mmwork.cli", "mmwork.reports"},
    "generate": {"mmwork.recommenders", "mmwork.experiments", "mmwork.cli", "mmwork.reports", "mmwork.demo"},
    "personalise": {"mmwork.experiments", "mmwork.cli", "mmwork.reports", "mmwork.demo"},
    "features": {"mmwork.recommenders", "mmwork.evaluation", "mmwork.experiments", "mmwork.cli"},
    "store": {"mmwork.features", "mmwork.recommenders", "mmwork.evaluation", "mmwork.queries", "mmwork.cli"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_stage_does_not_import_the_stages_above(stage):
    files = sorted((PACKAGE / stage).rglob("*.py")) if (PACKAGE / stage).is_dir() else [PACKAGE / f"{stage}.py"]
    bad = {f"{f.relative_to(PACKAGE)} imports {m}" for f in files for m in _imports(f)
           if any(m == up or m.startswith(up + ".") for up in FORBIDDEN[stage])}
    assert not bad, sorted(bad)
