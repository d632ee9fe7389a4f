"""Metrics for generated sound, computed in float64: mel-cepstral distortion, a Fréchet distance on the
feature pipeline's own audio statistics ("FD-mfcc-stats", never an "FAD": that name means VGGish
embeddings), and :func:`audio_report`, which puts every figure next to its floor and baseline.

Mel-cepstral distortion (MCD, Kubichek 1993), as defined here: the mel power spectrogram of each
signal (``librosa.feature.melspectrogram``, Hann window, centred frames) in dB (10 log10), both
raised to a floor ``floor_db`` below the reference's loudest bin (so that differences among
inaudible levels, e.g. digital silence against a vocoder's faint noise, do not dominate), its
orthonormal DCT-II (= ``librosa.feature.mfcc`` of that dB spectrogram), coefficients 1..K (c0, the
frame's loudness, left out, so a change of gain costs nothing away from the floor); per frame sqrt(2
* sum_k (c_k - c'_k)^2), averaged over frames. The coefficients are already in dB (the spectrum was
10 log10), so no 10/ln 10 factor is applied. Frames are aligned by index: both signals must have the
same length (no time warping).

>>> import numpy as np
>>> y = np.random.default_rng(0).normal(size=4000)
>>> mel_cepstral_distortion(y, y, 8000), mel_cepstral_distortion(y, 3 * y, 8000) < 1e-9
(0.0, True)
"""
from __future__ import annotations

import numpy as np
import torch

from mmwork.core.errors import MmworkError
from mmwork.evaluation.generation.distances import frechet_distance


def _signal(y, what: str) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or y.size == 0:
        raise MmworkError(f"{what} must be a non-empty 1-D (mono) waveform, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise MmworkError(f"{what} holds NaN or infinite samples")
    return y


def mel_cepstra(y, sr: int, n_mfcc: int = 13, n_fft: int = 512, hop_length: int = 128,
                n_mels: int = 40, floor: float | None = None) -> np.ndarray:
    """Mel cepstral coefficients 0..n_mfcc (n_mfcc + 1, frames) of one waveform, float64, as the
    module docstring defines them; dB levels below ``floor`` (None: -100 dB) are raised to it."""
    import librosa
    from scipy.fft import dct
    y = _signal(y, "the waveform")
    if not isinstance(sr, (int, np.integer)) or sr < 1:
        raise MmworkError(f"sr must be a positive integer sample rate, got {sr!r}")
    if not 1 <= n_mfcc < n_mels:
        raise MmworkError(f"n_mfcc must lie in 1..n_mels-1 = 1..{n_mels - 1}, got {n_mfcc}")
    power = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                           center=True, pad_mode="constant", power=2.0)
    db = np.maximum(10 * np.log10(np.maximum(power, 1e-10)), -100.0 if floor is None else floor)
    return dct(db, axis=0, type=2, norm="ortho")[:n_mfcc + 1]


def mel_cepstral_distortion(ref, est, sr: int, n_mfcc: int = 13, n_fft: int = 512, hop_length: int = 128,
                            n_mels: int = 40, floor_db: float = 60.0) -> float:
    """MCD in dB between a reference and an estimate of the same length (module docstring: MFCC
    1..``n_mfcc`` of ``n_mels`` bands, frames of ``n_fft`` samples every ``hop_length``, aligned by
    index, levels floored ``floor_db`` below the reference's loudest bin); 0 for identical signals."""
    ref, est = _signal(ref, "the reference"), _signal(est, "the estimate")
    if len(ref) != len(est):
        raise MmworkError(f"MCD aligns frames by index, so both signals must have the same length, got "
                          f"{len(ref)} and {len(est)} samples; trim or pad them first")
    params = {"n_mfcc": n_mfcc, "n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels}
    import librosa
    loudest = librosa.feature.melspectrogram(y=ref, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                             center=True, pad_mode="constant").max()
    params["floor"] = 10 * np.log10(max(loudest, 1e-10)) - floor_db
    diff = mel_cepstra(ref, sr, **params)[1:] - mel_cepstra(est, sr, **params)[1:]
    return float(np.sqrt(2 * (diff ** 2).sum(0)).mean())


def audio_statistics(clips, sr: int, feature: str = "mfcc_stats", n_mfcc: int = 13) -> np.ndarray:
    """The feature pipeline's summary ``feature`` (``mmwork.features.audio.audio_features`` with its
    defaults otherwise) of each waveform, as a float64 (N, D) array."""
    from mmwork.features.audio import audio_features, feature_dims
    if feature not in feature_dims(n_mfcc):
        raise MmworkError(f"unknown audio feature {feature!r}; choose one of {', '.join(feature_dims(n_mfcc))}")
    clips = [_signal(y, f"clip {i}") for i, y in enumerate(clips)]
    if not clips:
        raise MmworkError("no clips given")
    rows = [audio_features(y.astype(np.float32), sr, n_mfcc=n_mfcc)[feature] for y in clips]
    return np.stack(rows).astype(np.float64)


def _check_count(counts: dict[str, int], feature: str, n_mfcc: int) -> None:
    from mmwork.features.audio import feature_dims
    if feature not in feature_dims(n_mfcc):
        raise MmworkError(f"unknown audio feature {feature!r}; choose one of {', '.join(feature_dims(n_mfcc))}")
    dims = feature_dims(n_mfcc)[feature]
    short = {k: v for k, v in counts.items() if v <= dims}
    if short:
        raise MmworkError(f"a Fréchet distance on {feature} (n_mfcc={n_mfcc}: {dims} dimensions) needs more than "
                          f"{dims} clips in each set (and many more for a stable figure), got "
                          + ", ".join(f"{v} {k}" for k, v in short.items()) + "; use more clips or a smaller n_mfcc")


def audio_frechet_distance(a, b, sr: int, feature: str = "mfcc_stats", n_mfcc: int = 13) -> float:
    """Fréchet distance between two sets of waveforms (both at ``sr``) in the space of the pipeline's
    ``feature`` statistics ("FD-mfcc-stats"); each set needs more clips than the feature has
    dimensions (6 * n_mfcc for mfcc_stats), checked before any feature is computed.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noise = [rng.normal(size=2000) for _ in range(40)]
    >>> round(audio_frechet_distance(noise, noise, 8000, n_mfcc=2), 9)
    0.0
    """
    _check_count({"in the first set": len(a), "in the second set": len(b)}, feature, n_mfcc)
    return frechet_distance(audio_statistics(a, sr, feature, n_mfcc), audio_statistics(b, sr, feature, n_mfcc))


def audio_report(model, clips_test, classifier, clips_train=None, n: int | None = None, seed: int = 0,
                 n_iter: int = 32, n_mfcc: int = 13, k: int = 100) -> dict:
    """Figures for a fitted :class:`~mmwork.models.generators.AudioVAE` on held-out clips
    (:class:`~mmwork.models.generators.LabelledPatches`), each next to its floor or baseline:

    - ``elbo_test`` and ``nll_test`` (importance-sampled with ``k`` draws): nats per test patch; for a
      conditional model these are the conditional log p(x|c) and -log p(x|c), c the patch's own
      category, not log p(x) (``likelihood`` says which);
    - ``fd_samples``: FD-mfcc-stats of ``n`` samples (default: as many as test patches; conditioned
      on the test patches' categories, so both sets have the same category mix) against the real
      test segments; ``fd_floor_real``: ``n`` real training segments against the same test segments;
      ``fd_floor_vocoder``: those training patches after Griffin-Lim (a model that returned real
      patches exactly, heard through the vocoder); ``fd_noise``: ``n`` uniform-noise patches through
      Griffin-Lim (a baseline). Every set goes through ``audio_statistics`` with ``n_mfcc``;
    - ``conditional_accuracy``: the classifier's label for each sample (re-analysed from its
      Griffin-Lim sound) against the requested category, next to ``classifier_accuracy`` (real test
      patches) and ``classifier_accuracy_vocoder`` (test patches re-analysed after Griffin-Lim);
    - ``mcd_reconstruction``: MCD (dB, :func:`mel_cepstral_distortion` with the patches' n_fft and
      hop) of each test segment against the Griffin-Lim sound of its reconstruction (decoded from
      the posterior mean), next to ``mcd_floor_vocoder``: against the Griffin-Lim sound of its own
      patch.

    Sound is made by :func:`~mmwork.models.generators.patches_to_audio` (``n_iter`` iterations, ``seed``).
    ``clips_train`` (for the floors) may be None: those figures are then None. Counts are returned
    with the figures. Griffin-Lim costs about 0.3 s per patch on one core, five sets of them here.
    """
    from mmwork.models.data.audio import audio_to_patch, patches_to_audio
    from mmwork.models.data.images import one_hot
    model._check_fitted()
    classifier._check_fitted()
    mel = clips_test.mel
    if model.config.mel != mel or classifier.config.mel != mel:
        raise MmworkError("the model, the classifier and the clips must share one patch format (mel); got "
                          f"{model.config.mel!r}, {classifier.config.mel!r} and {mel!r}")
    if list(classifier.config.classes) != list(clips_test.classes):
        raise MmworkError(f"the classifier knows the classes {classifier.config.classes}, the clips "
                          f"{clips_test.classes}; train it on the same data set")
    dim = model.config.condition_dim
    if dim not in (0, len(clips_test.classes)):
        raise MmworkError(f"the model's condition has {dim} entries but the clips have {len(clips_test.classes)} "
                          "categories; train it with condition_dim=len(clips.classes)")
    n_test = len(clips_test.patches)
    n = n_test if n is None else n
    if not isinstance(n, int) or n < 1:
        raise MmworkError(f"n must be a positive integer, got {n!r}")
    counts = {"samples": n, "test clips": n_test}
    if clips_train is not None:
        counts["training clips"] = len(clips_train.patches)
        if len(clips_train.patches) < n:
            raise MmworkError(f"the floor compares {n} training segments with the test ones, but only "
                              f"{len(clips_train.patches)} training patches were given; lower n")
    _check_count(counts, "mfcc_stats", n_mfcc)

    rng = np.random.default_rng(seed)
    labels = clips_test.labels.numpy() if n == n_test else rng.choice(clips_test.labels.numpy(), n)
    k_classes = len(clips_test.classes)
    test_c = one_hot(clips_test.labels, k_classes) if dim else None
    to_audio = lambda p: patches_to_audio(p, mel, n_iter=n_iter, seed=seed)  # noqa: E731
    stats = lambda clips: audio_statistics(clips, mel.sr, n_mfcc=n_mfcc)  # noqa: E731
    reanalyse = lambda ys: torch.from_numpy(np.stack([audio_to_patch(y, mel.sr, mel) for y in ys]))  # noqa: E731

    samples = model.sample(n, one_hot(labels, k_classes) if dim else None, seed=seed).cpu()
    sample_audio = to_audio(samples)
    test_stats = stats(clips_test.audio)
    test_gl = to_audio(clips_test.patches)
    recon_gl = to_audio(model.reconstruct(clips_test.patches, test_c).cpu())
    noise = torch.from_numpy(rng.random((n, *clips_test.patches.shape[1:]), dtype=np.float32))
    mcd = {"n_mfcc": 13, "n_fft": mel.n_fft, "hop_length": mel.hop_length, "n_mels": min(40, mel.n_mels)}
    out = {
        "elbo_test": float(model.elbo(clips_test.patches, test_c, seed=seed).mean()),
        "nll_test": float(model.importance_nll(clips_test.patches, test_c, k=k, seed=seed).mean()),
        "nll_k": k, "likelihood": "log p(x|c), c the category" if dim else "log p(x)",
        "fd_samples": frechet_distance(stats(sample_audio), test_stats),
        "fd_floor_real": None, "fd_floor_vocoder": None,
        "fd_noise": frechet_distance(stats(to_audio(noise)), test_stats),
        "conditional_accuracy": (float((classifier.predict(reanalyse(sample_audio)).cpu().numpy() == labels).mean())
                                 if dim else None),
        "classifier_accuracy": classifier.accuracy(clips_test.patches, clips_test.labels),
        "classifier_accuracy_vocoder": classifier.accuracy(reanalyse(test_gl), clips_test.labels),
        "mcd_reconstruction": float(np.mean([mel_cepstral_distortion(r, e, mel.sr, **mcd)
                                             for r, e in zip(clips_test.audio, recon_gl)])),
        "mcd_floor_vocoder": float(np.mean([mel_cepstral_distortion(r, e, mel.sr, **mcd)
                                            for r, e in zip(clips_test.audio, test_gl)])),
    }
    if clips_train is not None:
        pick = np.sort(rng.choice(len(clips_train.patches), n, replace=False))
        out["fd_floor_real"] = frechet_distance(stats([clips_train.audio[i] for i in pick]), test_stats)
        out["fd_floor_vocoder"] = frechet_distance(stats(to_audio(clips_train.patches[torch.from_numpy(pick)])),
                                                   test_stats)
    return out | {"n_samples": n, "n_test": n_test, "n_train": len(clips_train.patches) if clips_train else None,
                  "feature_space": f"mfcc_stats (audio_features, n_mfcc={n_mfcc}: {6 * n_mfcc}-d) at {mel.sr} Hz",
                  "mcd": f"MFCC 1..13 of {mcd['n_mels']} mel bands, n_fft {mel.n_fft}, hop {mel.hop_length}",
                  "griffin_lim_iterations": n_iter}
