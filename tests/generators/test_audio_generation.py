"""Audio generation metrics on known cases and real speech, the audio classifier, and the report that
puts each figure next to its floor."""
import numpy as np
import pytest
import torch

import mmwork
from mmwork import MmworkError
from mmwork.evaluation import audio_frechet_distance, audio_report, audio_statistics, mel_cepstral_distortion
from mmwork.evaluation.audio_generation import mel_cepstra
from mmwork.features.audio import load_audio
from mmwork.models.judges import AudioClassifier
from mmwork.models.generators import AudioVAE
from mmwork.models.data import MelParams, audio_clips
from mmwork.models.data.images import one_hot


@pytest.fixture(scope="module")
def speech(speech_slice_root):
    root = speech_slice_root
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        return tuple(audio_clips("speech-prompts", split, max_patches=2) for split in ("train", "test"))


@pytest.fixture(scope="module")
def judge(speech):
    train, _ = speech
    return AudioClassifier(mel=train.mel, classes=train.classes, epochs=15, batch_size=16, channels=4, features=16,
                           device="cpu").fit(train.patches, train.labels)


# -- mel-cepstral distortion ---------------------------------------------------------------------------
def test_mcd_known_cases(speech_clip_path):
    y, sr = load_audio(speech_clip_path)
    assert mel_cepstral_distortion(y, y, sr) == 0.0
    rng = np.random.default_rng(0)
    hiss = lambda scale: y + rng.normal(scale=scale, size=len(y))  # noqa: E731
    # more noise, more distortion; a change of gain alone moves only c0, which MCD leaves out
    assert 0 < mel_cepstral_distortion(y, hiss(0.001), sr) < mel_cepstral_distortion(y, hiss(0.01), sr)
    noisy = hiss(0.01)
    assert mel_cepstral_distortion(noisy, 0.5 * noisy, sr) < 1e-9


def test_mcd_follows_its_definition(speech_clip_path):
    """librosa's own MFCC of the same dB mel spectrogram, and the per-frame formula written out."""
    import librosa
    y, sr = load_audio(speech_clip_path)
    y = y.astype(np.float64)  # as the metric computes
    est = np.roll(y, 40)
    c = mel_cepstra(y, sr)
    power = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=128, n_mels=40)
    assert np.allclose(c, librosa.feature.mfcc(S=10 * np.log10(np.maximum(power, 1e-10)), n_mfcc=14), atol=1e-3)
    floor = 10 * np.log10(power.max()) - 60  # the default floor_db below the reference's loudest bin
    d = mel_cepstra(y, sr, floor=floor)[1:] - mel_cepstra(est, sr, floor=floor)[1:]
    expected = np.mean([np.sqrt(2 * np.sum(d[:, t] ** 2)) for t in range(d.shape[1])])
    assert mel_cepstral_distortion(y, est, sr) == pytest.approx(expected, rel=1e-9)


def test_mcd_refuses_unaligned_or_bad_signals():
    with pytest.raises(MmworkError, match="same length, got 100 and 90 samples"):
        mel_cepstral_distortion(np.ones(100), np.ones(90), 8000)
    with pytest.raises(MmworkError, match="the estimate holds NaN"):
        mel_cepstral_distortion(np.ones(100), np.full(100, np.nan), 8000)
    with pytest.raises(MmworkError, match="1-D"):
        mel_cepstral_distortion(np.ones((2, 100)), np.ones((2, 100)), 8000)


# -- Fréchet distance on the pipeline's audio statistics -----------------------------------------------
def test_audio_fd_zero_for_one_set_and_ordered_on_real_speech(speech):
    train, test = speech
    sr = train.mel.sr
    assert audio_frechet_distance(test.audio, test.audio, sr, n_mfcc=2) == pytest.approx(0, abs=1e-8)
    rng = np.random.default_rng(0)
    noise = [rng.normal(scale=0.1, size=train.mel.segment).astype(np.float32) for _ in range(len(test.audio))]
    real = audio_frechet_distance(train.audio, test.audio, sr, n_mfcc=2)
    assert 0 < real < audio_frechet_distance(noise, test.audio, sr, n_mfcc=2) / 5
    stats = audio_statistics(test.audio[:3], sr, n_mfcc=2)
    assert stats.shape == (3, 12) and stats.dtype == np.float64


def test_audio_fd_refuses_too_few_clips_before_computing(speech):
    _, test = speech
    with pytest.raises(MmworkError, match=r"mfcc_stats \(n_mfcc=13: 78 dimensions\) needs more than 78 clips"):
        audio_frechet_distance(test.audio, [np.zeros(10)] * 5, 8000)  # the 5 silent clips are never analysed
    with pytest.raises(MmworkError, match="unknown audio feature 'mel'"):
        audio_frechet_distance(test.audio, test.audio, 8000, feature="mel")


# -- the audio classifier ------------------------------------------------------------------------------
def test_classifier_learns_categories_of_real_speech(speech, judge):
    train, _ = speech
    majority = np.bincount(train.labels.numpy()).max() / len(train.labels)
    assert judge.accuracy(train.patches, train.labels) > majority + 0.1
    assert judge.history_[-1]["loss"] < judge.history_[0]["loss"]
    assert judge.features(train.patches[:5]).shape == (5, 16)
    assert torch.allclose(judge.predict_proba(train.patches[:5]).sum(1), torch.ones(5))


def test_classifier_round_trip_and_bad_input(speech, judge, tmp_path):
    train, _ = speech
    judge.save(tmp_path / "c")
    loaded = mmwork.load(tmp_path / "c", device="cpu")
    assert type(loaded) is AudioClassifier and torch.equal(loaded.logits(train.patches), judge.logits(train.patches))
    with pytest.raises(MmworkError, match=r"labels must lie in 0..3 \(4 classes\), got 0..7"):
        judge.accuracy(train.patches[:8], torch.arange(8))
    with pytest.raises(MmworkError, match=r"patches must have shape \(N, 1, 64, 64\)"):
        judge.predict(torch.rand(2, 1, 32, 64))
    with pytest.raises(MmworkError, match="at least two classes"):
        AudioClassifier(classes=["digits"]).fit(train.patches, torch.zeros(len(train.patches), dtype=torch.long))
    assert not hasattr(judge, "sample")  # a judge draws nothing


# -- the report ----------------------------------------------------------------------------------------
def test_audio_report_puts_figures_next_to_their_floors(speech, judge):
    train, test = speech
    model = AudioVAE(mel=train.mel, classes=train.classes, epochs=3, latent=8, channels=4, hidden=32,
                     warmup_epochs=1, device="cpu").fit(train.patches, one_hot(train.labels, 4))
    report = audio_report(model, test, judge, clips_train=train, n_iter=2, n_mfcc=1, k=5)
    assert report["n_samples"] == report["n_test"] == len(test.patches) and report["n_train"] == len(train.patches)
    numbers = {k: v for k, v in report.items() if isinstance(v, float)}
    assert len(numbers) == 11 and all(np.isfinite(v) for v in numbers.values())
    # both are Monte-Carlo estimates (one z for the ELBO, k=5 for the NLL): the bound holds in expectation, so allow
    # a hair (1e-4 of ~15,000 nats) for the draws
    assert report["nll_test"] <= -report["elbo_test"] + 1e-4 * abs(report["elbo_test"])
    assert 0 <= report["conditional_accuracy"] <= 1 and 0 <= report["classifier_accuracy_vocoder"] <= 1
    assert report["fd_floor_real"] < report["fd_noise"] and report["fd_floor_vocoder"] < report["fd_noise"]
    assert 0 < report["mcd_floor_vocoder"] < report["mcd_reconstruction"]
    assert "6-d" in report["feature_space"] and report["griffin_lim_iterations"] == 2


def test_audio_report_refuses_mismatched_inputs(speech, judge):
    train, test = speech
    model = AudioVAE(mel=train.mel, classes=train.classes, epochs=1, latent=4, channels=4, hidden=8,
                     device="cpu").fit(train.patches[:8], one_hot(train.labels[:8], 4))
    with pytest.raises(MmworkError, match="share one patch format"):
        other = AudioVAE(mel=MelParams(frames=32), epochs=1, latent=4, channels=4, hidden=8, device="cpu")
        audio_report(other.fit(torch.rand(4, 1, 64, 32)), test, judge)
    with pytest.raises(MmworkError, match="needs more than 78 clips in each set"):
        audio_report(model, test, judge, n_mfcc=13)
    with pytest.raises(MmworkError, match="only 3 training patches"):
        audio_report(model, test, judge, clips_train=train._replace(patches=train.patches[:3]), n_mfcc=1)


# -- recognition: are conditioned samples heard as their category? ------------------------------------
def test_recognition_sets_samples_beside_chance_and_the_real_ceiling(speech, judge):
    from mmwork.apps.generate.evaluation import recognition
    train, test = speech
    model = AudioVAE(mel=train.mel, classes=train.classes, epochs=2, latent=4, channels=4, hidden=16,
                     device="cpu").fit(train.patches, one_hot(train.labels, 4))
    balanced = recognition(model, judge, test, 8, vocoder=False)
    assert balanced["samples"] == 8 and balanced["majority_share"] == 0.25  # the categories in turn
    assert set(balanced["by_category"]) == set(train.classes)
    present = test.labels.unique()
    hits = judge.predict(test.patches) == test.labels
    assert balanced["real_recognised"] == pytest.approx(float(torch.stack([hits[test.labels == c].float().mean()
                                                                            for c in present]).mean()))
    held = recognition(model, judge, test, requests="held-out", vocoder=False)
    assert held["samples"] == len(test.patches) and held["real_recognised"] == pytest.approx(
        judge.accuracy(test.patches, test.labels))
    assert held["majority_share"] == held["real_majority_share"] == pytest.approx(
        np.bincount(test.labels.numpy()).max() / len(test.labels))
    heard = recognition(model, judge, test, 4, n_iter=2)  # through Griffin-Lim and back
    assert heard["vocoder"] == "Griffin-Lim, 2 iterations" and 0 <= heard["recognised"] <= 1
    assert recognition(model, judge, test, 8, vocoder=False) == balanced  # seeded
    with pytest.raises(MmworkError, match="requests must be 'balanced' or 'held-out'"):
        recognition(model, judge, test, requests="uniform")
    with pytest.raises(MmworkError, match="share one category list"):
        recognition(model, judge, test._replace(classes=["a", "b", "c", "d"]), vocoder=False)


def test_audio_recognition_trains_nothing_and_says_what_to_train(tmp_path, monkeypatch):
    from mmwork.apps.generate.evaluation import audio_recognition
    monkeypatch.setenv("MMWORK_DATA", str(tmp_path))
    with pytest.raises(MmworkError, match="no saved audio-classifier for instrument-samples; train it first"):
        audio_recognition("instrument-samples")
    with pytest.raises(MmworkError, match="scores a category-conditioned audio generator"):
        audio_recognition("instrument-samples", "audio-classifier")
