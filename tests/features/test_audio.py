"""Audio features on small real clips (8 kHz speech WAV, 44.1 kHz FLAC) and synthetic signals."""
from __future__ import annotations

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")
from mmwork.features.audio import (AudioConfig, AudioDecodeError, audio_features,  # noqa: E402
                                   feature_dims, load_audio, warm_up)

MAIN_KEYS = {"mfcc_stats", "logmel_stats", "spectral_stats"}


def sine(freq=1000.0, sr=16000, seconds=1.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def assert_valid(out, n_mfcc=20, n_mels=64):
    assert MAIN_KEYS <= set(out)
    for key, size in feature_dims(n_mfcc, n_mels).items():
        assert out[key].shape == (size,) and out[key].dtype == np.float32, key
        assert np.isfinite(out[key]).all(), key


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm_up()


def test_defaults_and_dims():
    assert AudioConfig().model_dump() == {"sr": None, "n_mfcc": 20, "n_mels": 64, "hop_length": 256, "n_fft": 1024,
                                          "fmin": 0.0, "delta_width": 9, "keep_frames": False}
    assert feature_dims() == {"mfcc_stats": 120, "logmel_stats": 128, "spectral_stats": 10}
    assert feature_dims(13, 40) == {"mfcc_stats": 78, "logmel_stats": 80, "spectral_stats": 10}


def test_sine_known_spectral_values():
    sr, amp = 16000, 0.5
    spec = audio_features(sine(1000.0, sr, amp=amp), sr)["spectral_stats"]
    centroid_mean, zcr_mean, rms_mean = spec[0], spec[3], spec[4]
    assert centroid_mean == pytest.approx(1000.0, rel=0.05)
    assert zcr_mean == pytest.approx(2 * 1000 / sr, rel=0.05)
    assert rms_mean == pytest.approx(amp / np.sqrt(2), rel=0.03)
    assert spec[2] == pytest.approx(1000.0, rel=0.1)  # rolloff sits at the only peak
    assert spec[5] < 0.05 * centroid_mean  # a steady tone has a steady centroid (edge frames aside)


def test_rms_scales_with_amplitude():
    low, high = (audio_features(sine(440.0, 8000, amp=a), 8000)["spectral_stats"][4] for a in (0.1, 0.8))
    assert high / low == pytest.approx(8.0, rel=1e-3)


@pytest.mark.parametrize("n", [1, 300, 8000])
def test_silence_is_finite(n):
    out = audio_features(np.zeros(n, np.float32), 8000)
    assert_valid(out)
    assert np.all(out["spectral_stats"] == 0)  # no energy, no crossings
    assert np.allclose(out["mfcc_stats"][20:], 0, atol=1e-4)  # constant frames: zero deltas and stds


def test_mfcc_mean_equals_plain_librosa(speech_clip_path):
    y, sr = load_audio(speech_clip_path)
    params = {"n_mfcc": 13, "n_mels": 40, "n_fft": 512, "hop_length": 128, "fmin": 20.0}
    out = audio_features(y, sr, keep_frames=True, **params)
    ref = librosa.feature.mfcc(y=y, sr=sr, **params)
    assert np.allclose(out["mfcc_frames"], ref, rtol=1e-5, atol=1e-4)
    assert np.allclose(out["mfcc_stats"][:13], ref.mean(axis=1), rtol=1e-5, atol=1e-4)
    assert np.allclose(out["mfcc_stats"][39:52], ref.std(axis=1), rtol=1e-5, atol=1e-4)
    d1 = librosa.feature.delta(ref, width=9)
    assert np.allclose(out["mfcc_stats"][13:26], d1.mean(axis=1), rtol=1e-5, atol=1e-4)


def test_real_wav_shapes(speech_clip_path):
    y, sr = load_audio(speech_clip_path)
    assert sr == 8000 and y.dtype == np.float32 and y.ndim == 1 and len(y) > 4000
    assert -1.0 <= y.min() < 0 < y.max() <= 1.0
    out = audio_features(y, sr, keep_frames=True)
    assert_valid(out)
    assert out["mfcc_frames"].shape == (20, 1 + len(y) // 256) and out["mfcc_frames"].dtype == np.float32
    assert out["logmel_stats"][:64].max() <= 0.0  # power_to_db(ref=1) of a [-1, 1] signal


def test_real_flac_native_rate_and_resample(instrument_clip_path):
    y, sr = load_audio(instrument_clip_path)
    assert sr == 44100 and y.ndim == 1 and y.dtype == np.float32
    stereo, sr2 = load_audio(instrument_clip_path, mono=False)
    assert sr2 == 44100 and stereo.shape == (2, len(y))
    y22, sr22 = load_audio(instrument_clip_path, sr=22050)
    assert sr22 == 22050 and y22.dtype == np.float32 and abs(len(y22) - len(y) / 2) <= 1
    for wave, rate in [(y, sr), (y22, sr22)]:
        assert_valid(audio_features(wave, rate, n_mfcc=13, n_mels=40), 13, 40)


@pytest.mark.parametrize("n", [1, 2, 300, 1100, 2000])
def test_very_short_clips(n):
    y = sine(440.0, 8000, seconds=n / 8000) + np.float32(0.01)
    out = audio_features(y, 8000, keep_frames=True)
    assert_valid(out)
    assert out["mfcc_frames"].shape == (20, 1 + n // 256)


def test_bytes_equal_path(speech_clip_path):
    y_path, sr_path = load_audio(speech_clip_path)
    y_bytes, sr_bytes = load_audio(speech_clip_path.read_bytes())
    assert sr_bytes == sr_path and np.array_equal(y_bytes, y_path)
    assert np.array_equal(load_audio(str(speech_clip_path))[0], y_path)


def test_decode_errors(tmp_path, speech_clip_path):
    cases = {"zero.wav": b"", "random.wav": np.random.default_rng(0).bytes(4096),
             "truncated.wav": speech_clip_path.read_bytes()[:30], "text.flac": b"this is not audio\n" * 20}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for source in (path, data):
            with pytest.raises(AudioDecodeError) as err:
                load_audio(source)
            expected = "empty file" if not data else "not a valid audio file: "
            assert str(err.value).startswith(expected), (name, str(err.value))
    with pytest.raises(AudioDecodeError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    assert issubclass(AudioDecodeError, ValueError)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_mfcc": 0}, "n_mfcc"), ({"n_mels": 10}, "n_mels: .*must be >= n_mfcc=20"), ({"hop_length": 0}, "hop_length"),
    ({"n_fft": 128, "hop_length": 256}, "n_fft: .*must be >= hop_length=256"), ({"sr": 0}, "sr: .*greater than 0"),
    ({"delta_width": 4}, "delta_width: .*odd"), ({"fmin": 8000.0}, "fmin: .*below sr/2=8000"),
])
def test_bad_params_raise_value_error(kwargs, message):
    call = {"y": sine(), "sr": 16000, **kwargs}
    with pytest.raises(ValueError, match=message):
        audio_features(**call)


@pytest.mark.parametrize("y", [np.zeros(0, np.float32), np.zeros((2, 100), np.float32),
                               np.array([0.0, np.nan], np.float32)])
def test_bad_waveform_raises_value_error(y):
    with pytest.raises(ValueError, match="y "):
        audio_features(y, 8000)
