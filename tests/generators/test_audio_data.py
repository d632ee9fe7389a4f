"""Log-mel patches read from a real (small) speech-prompts store, and the mel transform both ways."""
import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.evaluation import mel_cepstral_distortion
from mmwork.features.audio import load_audio
from mmwork.models.data import MelParams, audio_clips, audio_to_patch, hold_out, patches_to_audio
from mmwork.models.data.audio import clip_segments, is_test_item, patch_to_power


@pytest.fixture
def speech_store(speech_slice_root, monkeypatch):
    monkeypatch.setenv("MMWORK_DATA", str(speech_slice_root))
    return speech_slice_root


def test_patches_from_the_store_split_by_clip(speech_store):
    train, test = audio_clips("speech-prompts", "train"), audio_clips("speech-prompts", "test")
    mel = MelParams.for_dataset("speech-prompts")
    for clips in (train, test):
        assert clips.patches.shape[1:] == (1, 64, 64) and clips.patches.dtype == torch.float32
        assert 0 <= clips.patches.min() and clips.patches.max() <= 1 and clips.patches.max() > 0.5
        assert clips.mel == mel and clips.classes == ["digits", "general", "letters", "phonetic"]
        assert len(clips.patches) == len(clips.labels) == len(clips.item_ids) == len(clips.audio)
        assert all(len(y) == mel.segment and y.dtype == np.float32 for y in clips.audio)
    # the split is by clip: no clip on both sides, every clip on one side, the test share near 20%
    assert not set(train.item_ids) & set(test.item_ids)
    assert len(set(train.item_ids) | set(test.item_ids)) == 62  # the clips in speech_slice_root
    assert all(is_test_item(i) for i in test.item_ids) and 5 <= len(set(test.item_ids)) <= 20
    # labels follow the folder; a patch is the forward transform of its own segment
    digits = train.classes.index("digits")
    assert all((label == digits) == item.startswith("digits/") for label, item in zip(train.labels, train.item_ids))
    assert np.array_equal(train.patches[3].numpy(), audio_to_patch(train.audio[3], mel.sr, mel))
    # long clips give several patches (at most max_patches), short ones one
    assert len(train.patches) > len(set(train.item_ids))
    capped = audio_clips("speech-prompts", "train", max_patches=1, limit=10)
    assert len(capped.patches) == 10 and capped.item_ids == list(dict.fromkeys(train.item_ids))[:10]


def test_hold_out_splits_by_clip(speech_store):
    train = audio_clips("speech-prompts", "train")
    kept, valid = hold_out(train, 0.2)
    assert len(kept.patches) + len(valid.patches) == len(train.patches) and len(valid.patches) > 0
    assert not set(kept.item_ids) & set(valid.item_ids)
    assert not set(valid.item_ids) & {i for i in valid.item_ids if is_test_item(i)}


def test_segments_are_trimmed_padded_and_cut(speech_clip_path):
    mel = MelParams()
    y, sr = load_audio(speech_clip_path)
    assert sr == mel.sr
    silence = np.zeros(4000, np.float32)
    (segment,) = clip_segments(np.concatenate([silence, y, silence]), mel)
    onset = lambda x: int(np.argmax(np.abs(x) > 0.05))  # noqa: E731
    # the half second of silence put before the word is trimmed away (to the frame: trimming works on frames)
    assert abs(onset(segment) - onset(clip_segments(y, mel)[0])) <= mel.hop_length
    assert np.isclose(np.abs(segment).max(), 1.0)  # peak-normalised
    assert np.all(segment[-100:] == 0)  # "seven" lasts less than a segment: zero-padded at the end
    assert [len(s) for s in clip_segments(np.ones(5 * mel.segment), mel, max_patches=3)] == [mel.segment] * 3


def test_mel_round_trip_keeps_format_and_beats_noise(speech_clip_path):
    mel = MelParams()
    y, _ = load_audio(speech_clip_path)
    (segment,) = clip_segments(y, mel)
    patch = torch.from_numpy(audio_to_patch(segment, mel.sr, mel))[None]
    (back,) = patches_to_audio(patch, mel, n_iter=16)
    assert back.shape == (mel.segment,) and back.dtype == np.float32  # at mel.sr: as many samples as the segment
    noise = np.random.default_rng(0).normal(scale=0.1, size=mel.segment)
    round_trip = mel_cepstral_distortion(segment, back, mel.sr)
    assert np.isfinite(round_trip) and round_trip < 0.5 * mel_cepstral_distortion(segment, noise, mel.sr)
    # the sound re-analysed gives nearly the patch back (Griffin-Lim's phase is not the original's)
    again = audio_to_patch(back, mel.sr, mel)
    assert np.abs(again - patch.numpy()[0]).mean() < 0.05
    # the same seed gives the same sound
    assert np.array_equal(back, patches_to_audio(patch, mel, n_iter=16)[0])


def test_patch_holds_db_and_inverts_to_power(speech_clip_path):
    """The inverse turns the [0, 1] scale back into dB and then into POWER (not dB, not amplitude)."""
    import librosa
    mel = MelParams()
    (segment,) = clip_segments(load_audio(speech_clip_path)[0], mel)
    power = librosa.feature.melspectrogram(y=segment, sr=mel.sr, n_fft=mel.n_fft, hop_length=mel.hop_length,
                                           n_mels=mel.n_mels, fmax=mel.sr / 2)[:, :mel.frames]
    patch = audio_to_patch(segment, mel.sr, mel)
    inside = (patch[0] > 0) & (patch[0] < 1)  # levels neither clipped at the floor nor at ref_db
    assert inside.mean() > 0.5
    assert np.allclose(patch_to_power(patch[None], mel)[0][inside], power[inside], rtol=1e-4)


def test_instrument_clip_is_resampled_to_its_patch_format(instrument_clip_path):
    mel = MelParams.for_dataset("instrument-samples")
    y, sr = load_audio(instrument_clip_path)
    assert sr == 44100 and mel.sr == 22050
    patch = audio_to_patch(y, sr, mel)
    assert patch.shape == (1, 64, 64) and patch.max() > 0.5
    assert np.allclose(patch, audio_to_patch(load_audio(instrument_clip_path, sr=mel.sr)[0], mel.sr, mel), atol=0.02)


def test_bad_requests_are_refused(speech_store):
    with pytest.raises(MmworkError, match="choose one of speech-prompts, instrument-samples"):
        audio_clips("fashion-mnist")
    with pytest.raises(MmworkError, match="'train', 'test' or 'all'"):
        audio_clips("speech-prompts", "valid")
    with pytest.raises(MmworkError, match="limit must be a positive integer"):
        audio_clips("speech-prompts", limit=0)
    with pytest.raises(MmworkError, match=r"patches must have shape \(N, 1, 64, 64\)"):
        patches_to_audio(torch.zeros(2, 1, 28, 28), MelParams())
    with pytest.raises(MmworkError, match="fmax: must be at most sr/2=4000"):
        MelParams.make(fmax=5000)
    with pytest.raises(MmworkError, match="hop_length: must be at most n_fft=64"):
        MelParams.make(n_fft=64)
    with pytest.raises(MmworkError, match="non-empty, finite 1-D"):
        audio_to_patch(np.zeros((2, 100)), 8000, MelParams())


def test_missing_store_says_how_to_build_it(data_root):
    with pytest.raises(MmworkError, match="mmwork data get speech-prompts"):
        audio_clips("speech-prompts")
