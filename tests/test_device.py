import pytest
import torch

from mmwork import MmworkError
from mmwork.device import resolve_device


def test_auto_picks_an_available_device():
    device = resolve_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else device.type)
    torch.zeros(1, device=device)  # usable


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
