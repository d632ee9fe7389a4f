"""What each generator name stands for, read from the model classes themselves: each generator and judge
class declares its data kind and its named presets (condition, defaults, a one-line description;
:mod:`mmwork.models.catalog`), and builds itself from the data (``from_data``). This module only checks
a name against a data set and validates parameters before any data is read.

>>> sorted(MODELS)[:4]
['audio-classifier', 'audio-vae', 'classifier', 'cvae']
>>> spec("fashion-mnist", "cvae").condition
'class'
>>> make_config(MODELS["vae"], "vae", {"latent": 4}).latent
4
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mmwork.core.errors import MmworkError
from mmwork.models.catalog import presets


@dataclass(frozen=True)
class ModelSpec:
    """A preset as the application sees it: the class, its data kind and the preset's condition,
    defaults and description."""

    klass: type
    data: str
    """"image" (Fashion-MNIST), "audio" (log-mel patches of clips) or "multimodal" (digits-av: image, audio and
    text of one class): the class's ``data_kind``."""
    condition: str
    """"none", "class" (one-hot), "text" (a sentence embedding) or "label" (a classifier's labels)."""
    defaults: dict = field(default_factory=dict)
    """Parameters on top of the class's own defaults (``--param`` overrides them)."""
    about: str = ""

    @property
    def cls(self) -> str:
        """The class's name (as recorded in run.json)."""
        return self.klass.__name__


MODELS: dict[str, ModelSpec] = {name: ModelSpec(klass, klass.data_kind, p.condition, dict(p.defaults), p.about)
                                for name, (klass, p) in presets().items()}
DATASETS = {"fashion-mnist": "image", "speech-prompts": "audio", "instrument-samples": "audio",
            "digits-av": "multimodal"}
SCORER = {"image": "classifier", "audio": "audio-classifier"}  # the model evaluate() labels samples with


def spec(dataset: str, model: str) -> ModelSpec:
    """The registry entry for ``model``, checked against ``dataset``'s kind of data."""
    if dataset not in DATASETS:
        raise MmworkError(f"unknown data set {dataset!r} for generators; choose from {', '.join(DATASETS)}")
    if model not in MODELS:
        raise MmworkError(f"unknown generator model {model!r}; choose from {', '.join(MODELS)}")
    found = MODELS[model]
    if found.data != DATASETS[dataset]:
        fits = [name for name, s in MODELS.items() if s.data == DATASETS[dataset]]
        raise MmworkError(f"{model} is a model for {found.data} data and {dataset} holds {DATASETS[dataset]}; "
                          f"for {dataset} choose from {', '.join(fits)}")
    return found


def train_command(dataset: str, model: str) -> str:
    """The command that trains ``model`` on ``dataset`` (for error messages)."""
    return f"mmwork generate train --dataset {dataset} --model {model}"


def make_config(found: ModelSpec, model: str, params: dict | None, **fixed):
    """The validated config (before any data is read); ``condition_dim`` comes from the data."""
    params = dict(params or {})
    fixed_by_data = sorted({"condition_dim", "n_classes", "classes", "mel"} & set(params))
    if fixed_by_data:
        raise MmworkError(f"{model}: {', '.join(fixed_by_data)} come(s) from the data set; leave them out")
    config_class = found.klass.config_class
    values = found.defaults | params | {k: v for k, v in fixed.items() if v is not None}
    return config_class.make(values)


def build(found: ModelSpec, config, classes: list[str], *, mel=None, text_dim: int | None = None):
    """The unfitted model of ``found``'s class, built by the class from the data: the classes (and, for
    sound, the mel parameters ``mel``), or ``text_dim``, the width of a text condition's embedding."""
    return found.klass.from_data(config.model_dump(exclude_unset=True), condition=found.condition, classes=classes,
                                 condition_dim=text_dim, mel=mel)
