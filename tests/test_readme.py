"""What the README tells users to call exists: every ``mmwork.NAME[.NAME...]`` it mentions and every
``from mmwork... import ...`` in its examples resolves."""
import importlib
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
IMPORTS = [f"{module}.{name.strip()}" for module, names in re.findall(r"from (mmwork[\w.]*) import ([\w, ]+)", README)
           for name in names.split(",")]
DOTTED = sorted(set(re.findall(r"\bmmwork(?:\.[A-Za-z_]\w*)+", README)) | set(IMPORTS))


def _resolve(dotted: str):
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, name in enumerate(parts[1:], start=1):
        if not hasattr(obj, name):  # a submodule its package has not imported
            importlib.import_module(".".join(parts[:i + 1]))
        obj = getattr(obj, name)
    return obj


def test_readme_names_something():
    assert len(IMPORTS) > 3 and len(DOTTED) > 10, DOTTED


@pytest.mark.parametrize("dotted", DOTTED)
def test_readme_name_resolves(dotted):
    _resolve(dotted)
