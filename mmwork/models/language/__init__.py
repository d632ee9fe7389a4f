"""The pretrained language model between the recommender and the generators (SmolLM2-135M-Instruct).

``LanguageModel.load()`` reads the GGUF fetched by ``mmwork models get smollm2``; ``lm.chat(messages)``
writes a prompt, ``lm.generate(prompts, ...)`` samples texts in batches, ``lm.perplexity(texts)`` scores
them, and ``fine_tune_lora(lm, train_pairs, valid_pairs)`` adapts it to (prompt, target) pairs.

>>> from mmwork.models.language import LanguageModel, fine_tune_lora
>>> lm = LanguageModel.load()                                                   # doctest: +SKIP
>>> lm.generate([lm.chat([{"role": "user", "content": "Hi"}])], temperature=0)  # doctest: +SKIP
['Hello! How can I help you today?']
"""
from mmwork.models.language.generation import Generations
from mmwork.models.language.lora import LoraConfig, fine_tune_lora
from mmwork.models.language.model import LanguageModel
from mmwork.models.language.sampling import SamplingConfig

__all__ = ["Generations", "LanguageModel", "LoraConfig", "SamplingConfig", "fine_tune_lora"]
