"""The data adapters read the store (not the raw files) and give generator-ready tensors."""
import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.generators import class_condition, fashion_mnist, one_hot

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_fashion_mnist_reads_the_store(fashion_store, fashion_images):
    pixels, labels = fashion_images
    data = fashion_mnist("test", limit=50)
    assert data.images.shape == (50, 1, 28, 28) and data.images.dtype == torch.float32
    # the PNG bytes in the store decode to exactly the idx file's pixels
    assert torch.equal(data.images, torch.from_numpy(pixels[:50]).float().div(255).unsqueeze(1))
    assert torch.equal(data.labels, torch.from_numpy(labels[:50]).long())
    assert data.classes == CLASSES
    train = fashion_mnist("train")
    assert len(train.images) == 300 and train.images.min() >= 0 and train.images.max() <= 1
    assert not torch.equal(train.images[:50], data.images)


def test_fashion_mnist_refuses_bad_requests(fashion_store):
    with pytest.raises(MmworkError, match="'train' and 'test'"):
        fashion_mnist("valid")
    with pytest.raises(MmworkError, match="limit must be a positive integer"):
        fashion_mnist("test", limit=0)


def test_fashion_mnist_says_how_to_build_a_missing_store(data_root):
    with pytest.raises(MmworkError, match="mmwork data get fashion-mnist"):
        fashion_mnist("test")


def test_one_hot_and_class_condition():
    assert torch.equal(one_hot(np.array([1, 0]), 2), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert torch.equal(class_condition([" ankle BOOT", "Bag"], CLASSES), one_hot([9, 8], 10))
    with pytest.raises(MmworkError, match="lie in 0..9"):
        one_hot([3, 10], 10)
    with pytest.raises(MmworkError, match="integer class indices"):
        one_hot([0.5], 10)
    with pytest.raises(MmworkError, match=r"unknown class 'boots'; the classes are T-shirt/top, Trouser"):
        class_condition("boots", CLASSES)
