"""The pretrained language model on its real weights: loading, seeded and batched generation, validation,
perplexity, the time budget, empty generations and the LoRA round trip. One model is loaded per module."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mmwork.core.errors import MmworkError
from mmwork.datasets import pretrained
from mmwork.models.language import LanguageModel, fine_tune_lora
from mmwork.models.language.loading import converted_dir, load_weights

os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUESTIONS = ["Name a film about the sea.", "What is 2+2?",
             "Write one sentence about a robot who learns to paint with watercolours in a small town."]


@pytest.fixture(scope="module")
def lm() -> LanguageModel:
    pretrained.get("smollm2")
    torch.set_num_threads(1)
    return LanguageModel.load(device="cpu")


@pytest.fixture(scope="module")
def prompts(lm) -> list[str]:
    return [lm.chat([{"role": "user", "content": q}]) for q in QUESTIONS]


def test_loads_from_the_fetched_gguf(lm):
    assert lm.source in ("gguf", "converted")
    sha = pretrained.spec("smollm2").files[pretrained.spec("smollm2").main]
    assert sha[:16] in converted_dir("smollm2").name  # any converted copy is keyed by the GGUF's hash
    assert next(lm.model.parameters()).dtype == torch.float32 and not lm.model.training
    assert lm.context_length == 8192
    prompt = lm.chat([{"role": "user", "content": "Hi"}])
    assert prompt.endswith("<|im_start|>assistant\n") and lm.n_tokens(prompt) > 5


@pytest.mark.slow
def test_converted_copy_equals_the_gguf(lm):
    _, model, source = load_weights("smollm2", converted=False)
    assert source == "gguf"
    ours = lm.model.state_dict()
    assert all(torch.equal(value, ours[key]) for key, value in model.state_dict().items())


def test_seeded_generation_is_deterministic_on_cpu(lm, prompts):
    first = lm.generate(prompts[:2], max_new_tokens=12, temperature=1.0, top_p=0.95, seed=3, progress=False)
    again = lm.generate(prompts[:2], max_new_tokens=12, temperature=1.0, top_p=0.95, seed=3, progress=False)
    other = lm.generate(prompts[:2], max_new_tokens=12, temperature=1.0, top_p=0.95, seed=4, progress=False)
    assert list(first) == list(again) and all(first)
    assert list(other) != list(first)
    assert first.done == first.asked == 2 and not first.stopped and len(first.new_tokens) == 2


def test_batched_greedy_equals_one_prompt_at_a_time(lm, prompts):
    batched = lm.generate(prompts, max_new_tokens=16, temperature=0, batch_size=3, progress=False)
    alone = [lm.generate([p], max_new_tokens=16, temperature=0, progress=False)[0] for p in prompts]
    assert list(batched) == alone
    # and equal to transformers' own greedy generate, one unpadded prompt at a time
    ids = lm.tokenizer(prompts[0], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = lm.model.generate(**ids, max_new_tokens=16, do_sample=False)
    assert lm.tokenizer.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True).strip() == batched[0]


@pytest.mark.parametrize("params, word", [
    ({"temperature": -0.1}, "temperature"), ({"temperature": 6}, "temperature"), ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"batch_size": 0}, "batch_size"),
    ({"seed": -1}, "seed"), ({"time_budget": "soon"}, "time_budget")])
def test_sampling_parameters_are_checked(lm, prompts, params, word):
    with pytest.raises(MmworkError, match=word):
        lm.generate(prompts[:1], progress=False, **params)


def test_bad_prompts_are_one_line_errors(lm):
    with pytest.raises(MmworkError, match="list of strings"):
        lm.generate("one string", progress=False)
    with pytest.raises(MmworkError, match="non-empty"):
        lm.generate(["ok", "  "], progress=False)
    with pytest.raises(MmworkError, match="shorten the prompt"):
        lm.generate(["word " * 9000], progress=False)
    with pytest.raises(MmworkError, match="role"):
        lm.chat([{"content": "no role"}])


def test_missing_model_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MMWORK_CACHE", str(tmp_path))
    with pytest.raises(MmworkError, match="run `mmwork models get smollm2`"):
        LanguageModel.load()


def test_time_budget_stops_after_the_batch_that_passes_it(lm, prompts):
    result = lm.generate(prompts, max_new_tokens=2, batch_size=1, time_budget=1e-6, progress=False)
    assert result.done == 1 and result.asked == 3 and "time budget" in result.stopped


def test_empty_generation_is_reported(lm):
    # after a closed turn with no assistant header the model opens a new turn: a special token, no text
    closed = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    result = lm.generate([closed], max_new_tokens=1, temperature=0, progress=False)
    assert result == [""] and result.empty == [0] and "1 empty" in result.summary()


def test_perplexity(lm):
    ppl = lm.perplexity(["The cat sat on the mat.", "mat the on cat sat The.", ""])
    assert ppl[0] < ppl[1] and np.isnan(ppl[2])
    prefixed = lm.perplexity(["The cat sat on the mat."], prefix="A short sentence:")
    assert np.isfinite(prefixed[0]) and prefixed[0] != ppl[0]
    with pytest.raises(MmworkError, match="prefixes"):
        lm.perplexity(["a", "b"], prefix=["x"])


def test_lora_round_trip(lm, prompts, tmp_path):
    pairs = [(lm.chat([{"role": "user", "content": f"Title for film {i}?"}]), f"Film number {i}") for i in range(4)]
    tuned = fine_tune_lora(lm, pairs[:3], pairs[3:], rank=2, epochs=2, batch_size=2, lr=5e-3, seed=0,
                           progress=False)
    history = tuned.adapter["history"]
    assert len(history) == 2 and all(np.isfinite(r["valid_loss"]) for r in history)
    assert lm.adapter is None  # the base model is left as it was
    base_weight = lm.model.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(tuned.model.model.layers[0].self_attn.q_proj.weight, base_weight)
    before = tuned.generate(prompts[:2], max_new_tokens=8, temperature=0, progress=False)
    tuned.save_adapter(tmp_path / "adapter")
    loaded = LanguageModel.load(adapter=tmp_path / "adapter", device="cpu")
    assert list(loaded.generate(prompts[:2], max_new_tokens=8, temperature=0, progress=False)) == list(before)
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in tuned.model.state_dict().items())


def test_lora_bad_input(lm, tmp_path):
    with pytest.raises(MmworkError, match="train_pairs"):
        fine_tune_lora(lm, [("prompt only",)], [("p", "t")], progress=False)
    with pytest.raises(MmworkError, match="rank"):
        fine_tune_lora(lm, [("p", "t")], [("p", "t")], rank=0, progress=False)
    with pytest.raises(MmworkError, match="no adapter to save"):
        lm.save_adapter(tmp_path / "none")
    with pytest.raises(MmworkError, match="holds no LoRA adapter"):
        LanguageModel.load(adapter=tmp_path)
