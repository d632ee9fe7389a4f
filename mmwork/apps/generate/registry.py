"""What each generator name stands for: the class, its defaults, the data and the condition it takes.

The one place that maps names to model classes and builds them from the data (the command line and
the demo pick models by name), so it can later be replaced by the classes' own descriptions without
touching the rest of ``mmwork.apps.generate``.

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


@dataclass(frozen=True)
class ModelSpec:
    """What a model name stands for."""

    cls: str
    """Class name in ``mmwork.models.generators`` or ``mmwork.models.judges`` (looked up when used)."""
    data: str
    """"image" (Fashion-MNIST) or "audio" (log-mel patches of clips)."""
    condition: str
    """"none", "class" (one-hot), "text" (a sentence embedding) or "label" (a classifier's labels)."""
    defaults: dict = field(default_factory=dict)
    """Parameters on top of the class's own defaults (``--param`` overrides them)."""
    about: str = ""


MODELS: dict[str, ModelSpec] = {
    "vae": ModelSpec("VAE", "image", "none", {"epochs": 20}, "convolutional VAE, Bernoulli likelihood"),
    "cvae": ModelSpec("VAE", "image", "class", {"epochs": 20}, "conditional VAE on the one-hot class"),
    "text-cvae": ModelSpec("VAE", "image", "text", {"epochs": 20},
                           "conditional VAE on a MiniLM embedding of a text (any text, not only a class name)"),
    "gan": ModelSpec("GAN", "image", "class", {"epochs": 10, "channels": 32},
                     "conditional hinge GAN: spectral norm, projection + auxiliary class head, class batch norm, EMA"),
    "classifier": ModelSpec("Classifier", "image", "label", {"epochs": 8},
                            "the in-project classifier that evaluate() scores images with"),
    "audio-vae": ModelSpec("AudioVAE", "audio", "class", {}, "VAE on log-mel patches, conditioned on the category"),
    "audio-classifier": ModelSpec("AudioClassifier", "audio", "label", {},
                                  "the in-project audio classifier that evaluate() scores sounds with"),
}
DATASETS = {"fashion-mnist": "image", "speech-prompts": "audio", "instrument-samples": "audio"}
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


def model_class(name: str):
    """The class called ``name`` among the generators and the judges (classifiers)."""
    import mmwork.models.generators as generators
    import mmwork.models.judges as judges
    klass = getattr(generators, name, None) or getattr(judges, name, None)
    if klass is None:
        raise MmworkError(f"this mmwork has no mmwork.models.generators.{name} yet; update mmwork for this model")
    return klass


def train_command(dataset: str, model: str) -> str:
    """The command that trains ``model`` on ``dataset`` (for error messages)."""
    return f"mmwork generate train --dataset {dataset} --model {model}"


def make_config(found: ModelSpec, model: str, params: dict | None, **fixed):
    """The validated config (before any data is read); ``condition_dim`` comes from the data."""
    params = dict(params or {})
    fixed_by_data = sorted({"condition_dim", "n_classes", "classes", "mel"} & set(params))
    if fixed_by_data:
        raise MmworkError(f"{model}: {', '.join(fixed_by_data)} come(s) from the data set; leave them out")
    config_class = model_class(found.cls).config_class
    values = found.defaults | params | {k: v for k, v in fixed.items() if v is not None}
    return config_class.make(values)


def build(found: ModelSpec, config, classes: list[str], *, mel=None, text_dim: int | None = None):
    """The unfitted model of ``found``'s class, its sizes taken from the data: the classes (and, for
    sound, the mel parameters ``mel``), or ``text_dim``, the width of a text condition's embedding."""
    klass = model_class(found.cls)
    if found.data == "audio":
        dim = len(classes) if found.condition == "class" else None
        return klass(config, classes=classes, mel=mel, **({} if dim is None else {"condition_dim": dim}))
    if found.condition == "label":
        return klass(config, n_classes=len(classes))
    if found.condition == "text":
        return klass(config, condition_dim=text_dim)
    return klass(config, condition_dim=len(classes) if found.condition == "class" else 0)
