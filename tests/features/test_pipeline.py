"""The Dask extraction pipeline on real data: equality with the serial loop, incremental runs,
resume after kill -9, the errors table, and a real distributed cluster on loopback."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from mmwork import MmworkError, datasets, read_table
from mmwork.features import extract
from mmwork.features.audio import audio_features, load_audio


def _features(dataset, modality="audio"):
    table = read_table(dataset, f"features/{modality}")
    return table.set_index("item_id")


def test_audio_matches_the_serial_librosa_loop(speech_root):
    summary = extract("speech-prompts", "audio", scheduler="processes", workers=2, limit=40, progress=False)
    assert summary[["rows", "errors", "extracted"]].values.tolist() == [[40, 0, 40]]
    got = _features("speech-prompts")
    items = read_table("speech-prompts", "items").head(40)
    assert got.index.tolist() == items["item_id"].tolist()  # items order, no gaps, no duplicates
    for item_id, path in zip(items["item_id"], items["audio"]):
        want = audio_features(*load_audio(path))
        for column, vector in want.items():
            np.testing.assert_allclose(got.loc[item_id, column], vector, rtol=1e-5, atol=1e-6)


def test_incremental_run_reuses_rows_and_equals_a_clean_run(speech_root, tmp_path, monkeypatch):
    shutil.rmtree(speech_root / "processed" / "speech-prompts" / "features", ignore_errors=True)
    extract("speech-prompts", "audio", scheduler="sync", limit=24, chunk_size=8, progress=False)
    again = extract("speech-prompts", "audio", scheduler="threads", workers=2, limit=40, chunk_size=8, progress=False)
    assert again[["rows", "extracted", "reused"]].values.tolist() == [[40, 16, 24]]
    incremental = _features("speech-prompts")
    shutil.rmtree(speech_root / "processed" / "speech-prompts" / "features")
    extract("speech-prompts", "audio", scheduler="sync", limit=40, chunk_size=8, progress=False)
    pd.testing.assert_frame_equal(incremental, _features("speech-prompts"))


def test_a_limited_run_keeps_every_existing_row(speech_root):
    """A limit bounds what one run computes (the first N items); it never shrinks the table."""
    shutil.rmtree(speech_root / "processed" / "speech-prompts" / "features", ignore_errors=True)
    extract("speech-prompts", "audio", scheduler="sync", limit=40, chunk_size=8, progress=False)
    before = _features("speech-prompts")
    # no chunk_size: the table's own (8) is kept, so the limit ends inside a part (items 8..15)
    summary = extract("speech-prompts", "audio", scheduler="sync", limit=12, progress=False)
    assert summary[["rows", "extracted", "reused"]].values.tolist() == [[12, 0, 12]]
    pd.testing.assert_frame_equal(_features("speech-prompts"), before)
    with pytest.raises(MmworkError, match="other parameters.*without --limit"):
        extract("speech-prompts", "audio", params={"audio": {"n_mfcc": 13}}, scheduler="sync", limit=8,
                progress=False)
    with pytest.raises(MmworkError, match="chunk size 8"):
        extract("speech-prompts", "audio", scheduler="sync", limit=8, chunk_size=4, progress=False)
    pd.testing.assert_frame_equal(_features("speech-prompts"), before)


@pytest.fixture
def duplicate_catalogue(data_root, tmp_path, speech_dir):
    """Six items over three real clips: items sharing a file, and items whose files are copies."""
    media = tmp_path / "dups" / "media"
    media.mkdir(parents=True)
    for name in ("1", "2", "3"):
        for copy in ("", "_copy"):
            shutil.copyfile(speech_dir / "digits" / f"{name}.wav", media / f"{name}{copy}.wav")
    rows = [("d1", "media/1.wav"), ("d2", "media/1.wav"), ("d3", "media/1_copy.wav"),
            ("d4", "media/2.wav"), ("d5", "media/2_copy.wav"), ("d6", "media/3.wav")]
    pd.DataFrame(rows, columns=["item_id", "audio"]).to_csv(tmp_path / "dups" / "items.csv", index=False)
    datasets.import_catalogue("dups", tmp_path / "dups")
    return "dups"


def _stats(folder):
    """(inode, mtime, content) of every file under ``folder``: a rewritten file gets a new inode
    (atomic rename) and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_rerun_with_nothing_changed_extracts_and_writes_nothing(duplicate_catalogue, data_root):
    first = extract(duplicate_catalogue, "audio", scheduler="sync", progress=False)
    assert first[["rows", "extracted", "reused"]].values.tolist() == [[6, 6, 0]]
    table = _features(duplicate_catalogue)
    folder = data_root / "processed" / duplicate_catalogue / "features"
    written = _stats(folder)
    again = extract(duplicate_catalogue, "audio", scheduler="sync", progress=False)
    assert again[["rows", "extracted", "reused"]].values.tolist() == [[6, 0, 6]]
    assert _stats(folder) == written, "an unchanged part must not be rewritten"
    pd.testing.assert_frame_equal(_features(duplicate_catalogue), table)
    # Nothing to do schedules nothing: not even an unreachable scheduler is contacted.
    idle = extract(duplicate_catalogue, "audio", scheduler=f"tcp://127.0.0.1:{_free_port()}", progress=False)
    assert idle[["extracted", "reused"]].values.tolist() == [[0, 6]] and _stats(folder) == written
    changed = extract(duplicate_catalogue, "audio", params={"audio": {"n_mfcc": 13}}, scheduler="sync",
                      progress=False)
    assert changed[["extracted", "reused"]].values.tolist() == [[6, 0]]
    assert len(_features(duplicate_catalogue).iloc[0]["mfcc_stats"]) == 78


def test_a_changed_item_rewrites_only_its_part(duplicate_catalogue, data_root, tmp_path, speech_dir):
    extract(duplicate_catalogue, "audio", scheduler="processes", workers=2, chunk_size=2, progress=False)
    folder = data_root / "processed" / duplicate_catalogue / "features"
    before, table = _stats(folder), _features(duplicate_catalogue)
    assert sorted(before) == [f"audio/part-0000{i}.parquet" for i in range(3)]
    # d5 (media/2_copy.wav, in the third part) now holds another real clip
    shutil.copyfile(speech_dir / "digits" / "9.wav", tmp_path / "dups" / "media" / "2_copy.wav")
    summary = extract(duplicate_catalogue, "audio", scheduler="processes", workers=2, progress=False)
    assert summary[["rows", "extracted", "reused"]].values.tolist() == [[6, 1, 5]]
    after = _stats(folder)
    assert after["audio/part-00000.parquet"] == before["audio/part-00000.parquet"]
    assert after["audio/part-00001.parquet"] == before["audio/part-00001.parquet"]
    assert after["audio/part-00002.parquet"][0] != before["audio/part-00002.parquet"][0], "d5's part is rewritten"
    now = _features(duplicate_catalogue)
    with threadpool_limits(1):  # as in the workers: one BLAS thread gives the same bits
        want = audio_features(*load_audio(speech_dir / "digits" / "9.wav"))
    np.testing.assert_array_equal(now.loc["d5", "mfcc_stats"], want["mfcc_stats"])
    pd.testing.assert_frame_equal(now.drop(index="d5"), table.drop(index="d5"))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_extraction_removes_only_its_dead_writers_temporaries(speech_root):
    extract("speech-prompts", "audio", scheduler="sync", limit=8, chunk_size=8, progress=False)
    features = speech_root / "processed" / "speech-prompts" / "features"
    (features / "audio_errors").mkdir(exist_ok=True)
    dead, live = [], []
    for folder in ("audio", "audio_errors"):
        dead.append(features / folder / f".part-00000.parquet.tmp-{_dead_pid()}-0badc0de")
        live.append(features / folder / f".part-00000.parquet.tmp-{os.getpid()}-abcd1234")
    for path in dead + live:
        path.write_bytes(b"half a part")
    try:
        extract("speech-prompts", "audio", scheduler="sync", limit=8, chunk_size=8, progress=False)
        assert not any(p.exists() for p in dead), "a killed writer's temporary is debris"
        assert all(p.exists() for p in live), "a running writer's temporary is work in progress"
    finally:
        for path in live:
            path.unlink(missing_ok=True)


def test_kill_9_midway_then_rerun_equals_a_clean_run(speech_root):
    features = speech_root / "processed" / "speech-prompts" / "features"
    shutil.rmtree(features, ignore_errors=True)
    command = [sys.executable, "-m", "mmwork", "extract", "speech-prompts", "--modalities", "audio",
               "--scheduler", "sync", "--chunk-size", "4", "--limit", "48", "--no-progress"]
    process = subprocess.Popen(command, env=os.environ | {"MMWORK_DATA": str(speech_root)})
    deadline = time.time() + 120
    while len(list((features / "audio").glob("part-*.parquet"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list((features / "audio").glob("part-*.parquet")))
    assert 3 <= written < 12, "the kill should land midway"
    summary = extract("speech-prompts", "audio", scheduler="sync", chunk_size=4, limit=48, progress=False)
    assert summary["reused"].item() >= 12 and summary["rows"].item() == 48
    resumed = _features("speech-prompts")
    shutil.rmtree(features)
    extract("speech-prompts", "audio", scheduler="sync", chunk_size=4, limit=48, progress=False)
    pd.testing.assert_frame_equal(resumed, _features("speech-prompts"))


@pytest.fixture
def broken_catalogue(data_root, tmp_path, speech_clip_path, instrument_clip_path, fashion_images):
    """A user catalogue with good files and deliberately bad ones of each kind."""
    from PIL import Image
    media = tmp_path / "shop" / "media"
    media.mkdir(parents=True)
    (media / "good.wav").write_bytes(speech_clip_path.read_bytes())
    (media / "good.flac").write_bytes(instrument_clip_path.read_bytes())
    (media / "garbage.wav").write_bytes(os.urandom(2048))
    (media / "truncated.flac").write_bytes(instrument_clip_path.read_bytes()[:100])
    (media / "zero.wav").write_bytes(b"")
    Image.fromarray(fashion_images[0][0]).save(media / "good.png")
    (media / "corrupt.png").write_bytes((media / "good.png").read_bytes()[:40])
    (media / "zero.png").write_bytes(b"")
    (media / "good.txt").write_bytes("A warm wool coat.".encode())
    (media / "latin1.txt").write_bytes(b"Caf\xe9 au lait")
    rows = [("a1", "media/good.wav", None, None), ("a2", "media/good.flac", None, None),
            ("a3", "media/garbage.wav", None, None), ("a4", "media/truncated.flac", None, None),
            ("a5", "media/zero.wav", None, None), ("a6", "media/missing.wav", None, None),
            ("i1", None, "media/good.png", None), ("i2", None, "media/corrupt.png", None),
            ("i3", None, "media/zero.png", None),
            ("t1", None, None, "media/good.txt"), ("t2", None, None, "media/latin1.txt"),
            ("t3", None, None, "media/good.txt")]
    pd.DataFrame(rows, columns=["item_id", "audio", "image", "text_path"]).to_csv(tmp_path / "shop" / "items.csv", index=False)
    datasets.import_catalogue("broken", tmp_path / "shop")
    return "broken"


def test_bad_inputs_become_error_rows_and_the_rest_is_extracted(broken_catalogue):
    summary = extract(broken_catalogue, scheduler="sync", progress=False,
                      params={"image": {"cnn": False}, "text": {"minilm": False, "skipgram_epochs": 1}}).set_index("modality")
    assert summary.loc["audio", ["rows", "errors"]].tolist() == [2, 4]
    assert summary.loc["image", ["rows", "errors"]].tolist() == [1, 2]
    assert summary.loc["text", ["rows", "errors"]].tolist() == [2, 1]
    errors = read_table(broken_catalogue, "features/audio_errors").set_index("item_id")
    assert errors.loc["a6", "stage"] == "read" and errors.loc["a6", "error_type"] == "FileNotFoundError"
    assert set(errors.loc[["a3", "a4", "a5"], "stage"]) == {"decode"}
    assert set(errors.loc[["a3", "a4", "a5"], "error_type"]) == {"AudioDecodeError"}
    assert _features(broken_catalogue).index.tolist() == ["a1", "a2"]
    image_errors = read_table(broken_catalogue, "features/image_errors")
    assert image_errors["item_id"].tolist() == ["i2", "i3"] and set(image_errors["stage"]) == {"decode"}
    text_errors = read_table(broken_catalogue, "features/text_errors")
    assert text_errors["item_id"].tolist() == ["t2"] and "UTF-8" in text_errors["message"].item()
    text = _features(broken_catalogue, "text")
    np.testing.assert_array_equal(text.loc["t1", "tfidf_lsa"], text.loc["t3", "tfidf_lsa"])


def test_error_messages_are_stable_across_runs(broken_catalogue, data_root):
    """No object addresses (``<_io.BytesIO object at 0x...>``): a rerun gives the same errors table,
    and so leaves the errors parts alone."""
    kwargs = dict(modalities=["audio", "image"], params={"image": {"cnn": False}}, scheduler="sync", progress=False)
    extract(broken_catalogue, **kwargs)
    first = {m: read_table(broken_catalogue, f"features/{m}_errors") for m in ("audio", "image")}
    folder = data_root / "processed" / broken_catalogue / "features"
    written = _stats(folder)
    again = extract(broken_catalogue, **kwargs).set_index("modality")
    assert again["extracted"].tolist() == [0, 0], "an unchanged input that failed is not decoded again"
    for modality, errors in first.items():
        assert not errors["message"].str.contains("0x").any(), errors["message"].tolist()
        pd.testing.assert_frame_equal(read_table(broken_catalogue, f"features/{modality}_errors"), errors)
    assert _stats(folder) == written


def test_strict_and_nothing_extracted_fail_loudly(broken_catalogue):
    with pytest.raises(MmworkError, match="--strict"):
        extract(broken_catalogue, "audio", scheduler="sync", strict=True, progress=False)
    result = subprocess.run([sys.executable, "-m", "mmwork", "extract", broken_catalogue, "--modalities", "image",
                             "--param", "image.cnn=false", "--limit", "3", "--scheduler", "sync"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "nothing could be extracted" in result.stderr  # a1..a3 have no image
    result = subprocess.run([sys.executable, "-m", "mmwork", "extract", broken_catalogue, "--modalities", "audio",
                             "--chunk-size", "1", "--scheduler", "sync"], capture_output=True, text=True)
    assert result.returncode == 0  # 2 of 6 extracted
    with pytest.raises(MmworkError, match="unknown parameter 'mfcc'"):
        extract(broken_catalogue, "audio", params={"audio": {"mfcc": 3}})
    with pytest.raises(MmworkError, match="no image input column"):
        datasets.get("speech-prompts")
        extract("speech-prompts", "image")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_extract_on_a_real_distributed_cluster(speech_root, tmp_path):
    """A `dask scheduler` and two `dask worker` processes on loopback, driven by address."""
    bin_dir = os.path.dirname(sys.executable)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = os.environ | {"MMWORK_DATA": str(speech_root)}
    procs = [subprocess.Popen([os.path.join(bin_dir, "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([os.path.join(bin_dir, "dask"), "worker", address, "--nthreads", "1",
                                           "--no-dashboard", "--memory-limit", "2GiB"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            assert len(client.scheduler_info()["workers"]) == 2
        features = speech_root / "processed" / "speech-prompts" / "features"
        shutil.rmtree(features, ignore_errors=True)
        summary = extract("speech-prompts", "audio", scheduler=address, limit=32, chunk_size=8, progress=False)
        assert summary[["rows", "errors"]].values.tolist() == [[32, 0]]
        on_cluster = _features("speech-prompts")
        shutil.rmtree(features)
        extract("speech-prompts", "audio", scheduler="sync", limit=32, chunk_size=8, progress=False)
        pd.testing.assert_frame_equal(on_cluster, _features("speech-prompts"), rtol=1e-5)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_unreachable_scheduler_is_a_clear_error(speech_root):
    shutil.rmtree(speech_root / "processed" / "speech-prompts" / "features", ignore_errors=True)
    with pytest.raises(MmworkError, match="cannot reach the Dask scheduler"):
        extract("speech-prompts", "audio", scheduler=f"tcp://127.0.0.1:{_free_port()}", limit=4, progress=False)
    with pytest.raises(MmworkError, match="neither processes"):
        extract("speech-prompts", "audio", scheduler="proceses", limit=4, progress=False)
