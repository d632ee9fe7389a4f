"""What the personalisation loop builds: :class:`PersonaliseConfig`, with a typed config for each of
its models, checked before any data is read.

The language model, the guide and the two judges take their own classes' parameters (the fields of
``RNNLanguageModelConfig``, ``ContentBasedConfig``, ``MultimodalHybridConfig`` and
``TextFactorsConfig``, with their bounds and docstrings), less those the loop sets itself (sizes that
come from the data, the seeds and the device). A dict is read into them, so a wrong name or value
fails here, with one line that says which model it was meant for.

>>> config = PersonaliseConfig.make(lm={"hidden_dim": 64, "epochs": 2}, judge={"epochs": 5})
>>> config.lm.hidden_dim, config.lm.embedding_dim, config.judge.epochs
(64, 128, 5)
>>> PersonaliseConfig.make(lm={"hiden_dim": 64})                                  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mmwork.core.errors.MmworkError: bad parameter for Personalise: lm: unknown parameter 'hiden_dim' for the ...
"""
from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt, PositiveInt, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from mmwork.core.config import Config
from mmwork.models.generators.rnn_lm import RNNLanguageModelConfig
from mmwork.models.recommenders.content import ContentBasedConfig
from mmwork.models.recommenders.hybrid import MultimodalHybridConfig
from mmwork.models.recommenders.text_factors import TextFactorsConfig

LM_DEFAULTS = {"embedding_dim": 128, "hidden_dim": 256, "layers": 1, "dropout": 0.1, "epochs": 8,
               "batch_size": 128, "patience": 2}
"""The language model's parameters unless ``PersonaliseConfig.lm`` overrides them."""
SECOND_JUDGE_TEXT = ("text:tfidf_lsa", "text:skipgram", "text:minilm")
"""The second judge's default text features, in order of preference (the first not read by the guide)."""


def _part_of(config_class: type[Config], what: str, fixed: dict[str, str], defaults: dict | None = None):
    """A config class with ``config_class``'s fields (types, bounds, docstrings) less the ``fixed``
    ones (name -> where its value comes from), its defaults replaced by ``defaults``. A fixed or
    unknown name is refused with a message naming ``what``."""
    defaults = defaults or {}
    fields = {}
    for name, info in config_class.model_fields.items():
        if name not in fixed:
            info = FieldInfo.merge_field_infos(info, default=defaults[name]) if name in defaults else info
            fields[name] = (info.annotation, info)

    def refuse_fixed_and_unknown(cls, values):
        if isinstance(values, dict):
            given = sorted(set(values) & set(fixed))
            if given:
                raise ValueError(f"{', '.join(f'{g} (from {fixed[g]})' for g in given)} set by the loop; leave "
                                 f"{'it' if len(given) == 1 else 'them'} out of the {what}'s parameters")
            unknown = sorted(set(values) - set(fields))
            if unknown:
                raise ValueError(f"unknown parameter {unknown[0]!r} for the {what} (it has {', '.join(fields)})")
        return values

    part = create_model(f"{config_class.__name__.removesuffix('Config')}Params", __base__=Config,
                        __doc__=f"Parameters of the personalisation loop's {what}: ``{config_class.__name__}``'s "
                                f"fields less {', '.join(fixed)} (set by the loop).",
                        __validators__={"_refuse": model_validator(mode="before")(classmethod(
                            refuse_fixed_and_unknown))}, **fields)
    return part


LanguageModelParams = _part_of(RNNLanguageModelConfig, "language model",
                               {"vocab_size": "the tokenizer", "condition_dim": "the item features",
                                "max_len": "the longest text", "seed": "the config's seed",
                                "device": "the config's device"}, LM_DEFAULTS)
"""The language model's parameters: :data:`LM_DEFAULTS` over ``RNNLanguageModelConfig``'s defaults."""
GuideParams = _part_of(ContentBasedConfig, "guide", {"seed": "the config's seed", "device": "the config's device"})
"""The guide's ``ContentBased`` parameters."""
JudgeParams = _part_of(MultimodalHybridConfig, "judge",
                       {"seed": "the config's judge_seed", "device": "the config's device"})
"""The first judge's ``MultimodalHybrid`` parameters."""
TextJudgeParams = _part_of(TextFactorsConfig, "second judge",
                           {"seed": "the config's judge_seed", "device": "the config's device"})
"""The second judge's ``TextFactors`` parameters."""


class PersonaliseConfig(Config):
    """What ``train`` builds and what ``evaluate`` measures by default."""

    text_column: str = "text"
    """The items column the generator learns to write (and generated items are texts of)."""
    label_column: str | None = "genres"
    """A list-of-labels items column whose labels a generated text lists after ``label_marker``
    (parsed into the item's label vector); None when texts carry no labels."""
    label_marker: str | None = None
    """What precedes the labels in a text; default: the label column's name capitalised plus ":"
    ("Genres:")."""
    features: list[str] = ["text:minilm", "items:genres"]
    """Item features (``load_item_features`` specs) that make up content and profiles, read by the
    guide and the judge: ``text:COLUMN`` columns and ``items:<label_column>``."""
    tokenizer: Literal["bpe", "word"] = "bpe"
    """Byte-level BPE subwords or whole words (``mmwork.models.data.text.Tokenizer``)."""
    vocab_size: PositiveInt = 2000
    """Largest tokenizer vocabulary, special tokens included."""
    lm: LanguageModelParams = LanguageModelParams()
    """``RNNLanguageModel`` parameters over :data:`LM_DEFAULTS` (e.g. ``{"hidden_dim": 128, "epochs": 2}``)."""
    guide: GuideParams = GuideParams()
    """``ContentBased`` parameters of the guide."""
    judge: JudgeParams = JudgeParams()
    """``MultimodalHybrid`` parameters of the first judge."""
    judge2: TextJudgeParams = TextJudgeParams()
    """``TextFactors`` parameters of the second judge (another representation and model family)."""
    judge2_features: list[str] | None = None
    """Text features the second judge reads (``text:COLUMN``, none of ``features``); default: the first
    of text:tfidf_lsa, text:skipgram, text:minilm that is not among ``features``."""
    split_seed: NonNegativeInt = 2020
    """Seed of the per-user 8:1:1 split."""
    seed: NonNegativeInt = 0
    """Seed of the language model (and of the guide)."""
    judge_seed: NonNegativeInt = 1
    """The judge's own seed, different from the generator's."""
    n_users: PositiveInt = 200
    """Users ``evaluate`` draws (those with held-out items and a profile)."""
    n: PositiveInt = 10
    """Items per user."""
    candidates: PositiveInt = 50
    """Samples drawn per user before the guide keeps ``n``."""
    swaps: PositiveInt = 10
    """Other users each user's set is scored for in the swap test."""
    seeds: PositiveInt = 3
    """Generator (sampling) seeds ``evaluate`` draws each user's sets with; intervals resample them."""
    device: str = "auto"
    """Torch device for every model: "auto", "cpu", "cuda", ..."""

    @field_validator("features")
    @classmethod
    def _specs(cls, value):
        if not value:
            raise ValueError("name at least one feature spec, e.g. ['text:minilm']")
        for spec in value:
            table, sep, column = spec.partition(":")
            if not sep or not column or table not in ("text", "items"):
                raise ValueError(f"{spec!r}: personalisation reads 'text:COLUMN' or 'items:LABEL_COLUMN' "
                                 "features (a generated item has only a text)")
        return value

    @model_validator(mode="after")
    def _second_judge(self):
        specs = self.judge2_specs()
        wrong = [s for s in specs if not s.startswith("text:") or not s.partition(":")[2]]
        if not specs or wrong:
            raise ValueError(f"judge2_features {wrong or specs}: the second judge reads text:COLUMN features")
        shared = sorted(set(specs) & set(self.features))
        if shared:
            raise ValueError(f"judge2_features {shared} are also the guide's features; the second judge must read "
                             "another representation")
        return self

    @model_validator(mode="after")
    def _models_accept_their_parameters(self):
        check_models(self)
        return self

    def judge2_specs(self) -> list[str]:
        """The second judge's features (``judge2_features``, or the default)."""
        if self.judge2_features is not None:
            return list(self.judge2_features)
        return [next(s for s in SECOND_JUDGE_TEXT if s not in self.features)]

    def marker(self) -> str | None:
        if self.label_column is None:
            return None
        return self.label_marker or f"{self.label_column.replace('_', ' ').capitalize()}:"


def lm_params(config: PersonaliseConfig) -> dict:
    """The language model's parameters but the sizes that come from the data."""
    return config.lm.model_dump() | {"seed": config.seed, "device": config.device}


def check_models(config: PersonaliseConfig) -> None:
    """Every model's parameters, validated by its own class before any data is read (the checks that
    join several fields, e.g. ``tie_weights`` with the sizes)."""
    from mmwork.models.recommenders import ContentBased, MultimodalHybrid
    from mmwork.models.recommenders.text_factors import TextFactors
    RNNLanguageModelConfig.make(lm_params(config) | {"vocab_size": config.vocab_size, "condition_dim": 1})
    ContentBased(config.guide.model_dump() | {"device": config.device})
    MultimodalHybrid({"seed": config.judge_seed} | config.judge.model_dump() | {"device": config.device})
    TextFactors({"seed": config.judge_seed} | config.judge2.model_dump() | {"device": config.device})
