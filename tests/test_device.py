import pytest
import torch

from mmwork import MmworkError
from mmwork.core.device import resolve_device


def test_auto_picks_an_available_device():
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    device = resolve_device("auto")
    assert device.type == expected
    assert torch.ones(2, device=device).sum().item() == 2  # usable


def test_auto_falls_back_to_cpu_without_cuda_or_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")  # MPS before CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")  # CUDA first


def test_explicit_cpu_and_bad_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(MmworkError, match="unknown device"):
        resolve_device("tpu-please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(MmworkError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.gpu
def test_cuda_is_used_when_present():
    assert resolve_device("auto").type == "cuda"
