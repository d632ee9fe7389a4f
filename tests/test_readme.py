"""What the README and the pages under docs/ tell users to call exists: every ``mmwork.NAME[.NAME...]``
they mention and every ``from mmwork... import ...`` in their examples resolves; every relative link
points at a file that exists (and at a heading of it, when the link names one), and so does every
``mmwork/...`` path; the README links every page of docs/, and its architecture table names the stages
of ``tests/test_layers.py`` in their order."""
import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXTS = {page.relative_to(ROOT).as_posix(): page.read_text() for page in PAGES}


def _names(text: str) -> tuple[list[str], list[str]]:
    """(names imported in the examples, every dotted mmwork name including those)."""
    imports = [f"{module}.{name.strip()}" for module, names in re.findall(r"from (mmwork[\w.]*) import ([\w, ]+)", text)
               for name in names.split(",")]
    dotted = sorted(set(re.findall(r"\bmmwork(?:\.[A-Za-z_]\w*)+", text)) | set(imports))
    return imports, dotted


NAMES = sorted({(page, name) for page, text in TEXTS.items() for name in _names(text)[1]})
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINKS = sorted({(page, target) for page, text in TEXTS.items()
                for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", text))
                if not re.match(r"[a-z]+:", target)})

PATHS = sorted({(page, path) for page, text in TEXTS.items() for path in re.findall(r"`(mmwork/[\w/.]*)", text)})


def _resolve(dotted: str):
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, name in enumerate(parts[1:], start=1):
        if not hasattr(obj, name):  # a submodule its package has not imported
            importlib.import_module(".".join(parts[:i + 1]))
        obj = getattr(obj, name)
    return obj


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", FENCE.sub("", text), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_readme_names_something():
    imports, dotted = _names(TEXTS["README.md"])
    assert len(imports) > 3 and len(dotted) > 5, dotted
    assert len(NAMES) > 50 and len(TEXTS) > 5, TEXTS.keys()


@pytest.mark.parametrize("page,dotted", NAMES, ids=[f"{page}:{name}" for page, name in NAMES])
def test_doc_name_resolves(page, dotted):
    _resolve(dotted)


@pytest.mark.parametrize("page,target", LINKS, ids=[f"{page}:{target}" for page, target in LINKS])
def test_doc_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    file = (ROOT / page).parent / path if path else ROOT / page
    assert file.exists(), f"{page} links to {target}, which does not exist"
    if anchor and file.suffix == ".md":
        assert anchor in _anchors(file.read_text()), f"{page} links to {target}: no such heading"


def test_readme_links_every_docs_page():
    linked = {target.partition("#")[0] for page, target in LINKS if page == "README.md"}
    missing = [page for page in TEXTS if page.startswith("docs/") and page not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page,path", PATHS, ids=[f"{page}:{path}" for page, path in PATHS])
def test_doc_path_exists(page, path):
    path = ROOT / path.rstrip("/")
    assert path.exists() or path.with_suffix(".py").exists(), f"{page} names {path}, which does not exist"


def test_readme_architecture_lists_the_stages():
    """The README's table of stages, top to bottom, is test_layers.STAGES in order, one folder each."""
    tree = ast.parse((ROOT / "tests" / "test_layers.py").read_text())
    stages = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(target, "id", None) == "STAGES" for target in node.targets))
    section = TEXTS["README.md"].split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| `mmwork/(\w+)` \|", section, re.M)
    assert [stage for stage, _ in rows] == stages, rows
    assert all(stage == folder for stage, folder in rows), rows
