"""Generators by name, for the CLI, notebooks and the demo: a data set, a model name, a folder.

``train`` fits a named model on the store's data (the last tenth of the images it reads held out for
early stopping) and saves it under ``data/models/generators/<dataset>/<model>/``; ``load``,
``sample`` and ``evaluate`` find it there. One registry, :data:`MODELS`, says what each name is: the
class, its defaults, the kind of data and the kind of condition it takes.

One job per module: ``registry`` (names -> classes, data and conditions), ``folders`` (where models
live; save and load), ``data`` (training data and condition rows), ``training`` (fit, checkpoints,
progress), ``sampling`` (samples, PNG and WAV writers), ``evaluation`` (the metric tables).

>>> sorted(MODELS)[:4]
['audio-classifier', 'audio-vae', 'classifier', 'cvae']
>>> model = train("fashion-mnist", "cvae", epochs=5, limit=5000)                    # doctest: +SKIP
>>> save_grid(sample("fashion-mnist", "cvae", 64, condition="ankle boot").data, "boots.png")  # doctest: +SKIP
>>> evaluate("fashion-mnist", "cvae", n=2000).metrics["conditional_accuracy"]      # doctest: +SKIP
"""
from mmwork.apps.generate.data import VALID_SHARE, conditions
from mmwork.apps.generate.evaluation import LABEL_METRICS, SOURCE_SUFFIX, GenerationReport, audio_recognition, evaluate
from mmwork.apps.generate.folders import checkpoint_dir, info, load, model_dir, models
from mmwork.apps.generate.registry import DATASETS, MODELS, SCORER, ModelSpec, spec
from mmwork.apps.generate.sampling import Samples, sample, save_grid, save_samples, save_wavs
from mmwork.apps.generate.training import classifier, train

__all__ = ["DATASETS", "LABEL_METRICS", "MODELS", "SCORER", "SOURCE_SUFFIX", "VALID_SHARE", "GenerationReport",
           "ModelSpec", "Samples", "audio_recognition", "checkpoint_dir", "classifier", "conditions", "evaluate", "info", "load",
           "model_dir", "models", "sample", "save_grid", "save_samples", "save_wavs", "spec", "train"]
