"""Fixtures for the generator tests: real Fashion-MNIST images as model input, and a small real slice
of the fashion-mnist store built by the data set's own builder."""
import shutil

import pytest
import torch

from mmwork.datasets.sources import debian_package_root

TRANSCRIPTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
SPEECH_SLICE = {"general": 24, "digits": 16, "letters": 16, "phonetic": 6}  # clips per category (first in name order)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models and matrices: one thread is as fast on an idle machine and far faster when the CI
    runner's cores are shared (OpenMP threads waiting on each other)."""
    from threadpoolctl import threadpool_limits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # numpy's BLAS too, for the metrics' small matrix products
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def images(fashion_images):
    """The 256 real test images as float pixels in [0, 1], (256, 1, 28, 28), and their labels."""
    pixels, labels = fashion_images
    return torch.from_numpy(pixels).float().div(255).unsqueeze(1), torch.from_numpy(labels).long()


@pytest.fixture(scope="session")
def fashion_slice_root(tmp_path_factory, fashion_idx_slice):
    """A data root whose fashion-mnist table holds the first 300 train and 200 test images: the real
    idx files, cut short, fed through ``mmwork.datasets.get`` (the full 70,000 take about 15 s)."""
    from mmwork import datasets
    root = tmp_path_factory.mktemp("fashion-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        datasets.get("fashion-mnist", source=fashion_idx_slice)
    return root


@pytest.fixture
def fashion_store(fashion_slice_root, monkeypatch):
    monkeypatch.setenv("MMWORK_DATA", str(fashion_slice_root))
    return fashion_slice_root


@pytest.fixture(scope="session")
def speech_slice_root(tmp_path_factory, speech_dir):
    """A data root whose speech-prompts store holds 62 real clips of four categories, built by the data
    set's own builder from a cut-down copy of the Debian folder (shared by the audio test modules)."""
    from mmwork import datasets
    source = tmp_path_factory.mktemp("speech-source")
    for category, n in SPEECH_SLICE.items():
        folder = speech_dir if category == "general" else speech_dir / category
        target = source if category == "general" else source / category
        target.mkdir(exist_ok=True)
        for wav in sorted(folder.glob("*.wav"))[:n]:
            shutil.copyfile(wav, target / wav.name)
    shutil.copyfile(debian_package_root("asterisk-core-sounds-en", f"/{TRANSCRIPTS}") / TRANSCRIPTS,
                    source / "core-sounds-en.txt.gz")
    root = tmp_path_factory.mktemp("speech-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        datasets.get("speech-prompts", source=source)
    return root


@pytest.fixture(scope="session")
def title_corpus(tmp_path_factory):
    """The MovieLens-100K title corpus (``title_conditions``), built in a private data root."""
    from mmwork import datasets
    from mmwork.models.data.text import title_conditions
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("movielens-titles")))
        datasets.get("movielens-100k")
        return title_conditions("movielens-100k")
