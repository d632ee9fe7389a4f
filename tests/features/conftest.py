"""Fixtures shared by the feature tests."""
import pytest

from mmwork import datasets


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory):
    """A private data root holding the speech-prompts data set, one per test module (its tests share
    the feature tables they write, in file order)."""
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        datasets.get("speech-prompts")
        yield root
