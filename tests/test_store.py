"""The Parquet store: schemas, metadata, atomic writes, catalogue, clear errors."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mmwork import MmworkError
from mmwork.store.tables import list_tables, read_table, remove_dead_temporaries, table_metadata, table_path, write_table
from mmwork.store.validate import validate_interactions, validate_items


def test_round_trip_keeps_explicit_schema_and_metadata(data_root):
    schema = pa.schema([("item_id", pa.string()), ("mfcc_stats", pa.list_(pa.float32(), 4))])
    frame = pd.DataFrame({"item_id": ["a", "b"], "mfcc_stats": [np.arange(4, dtype=np.float32)] * 2})
    path = write_table(frame, table_path("toy", "features"), schema=schema, producer="test",
                       params={"n_mfcc": 4}, input_hash="abc")
    parquet_schema = pa.parquet.read_schema(path)
    assert parquet_schema.field("mfcc_stats").type == pa.list_(pa.float32(), 4)
    meta = table_metadata("toy", "features")
    assert meta["producer"] == "test" and meta["params"] == {"n_mfcc": 4} and meta["input_hash"] == "abc"
    assert meta["rows"] == 2 and meta["mmwork_version"] and meta["created"]
    back = read_table("toy", "features")
    np.testing.assert_array_equal(np.stack(back["mfcc_stats"]), np.stack(frame["mfcc_stats"]))
    dask_frame = read_table("toy", "features", as_dask=True)
    assert dask_frame.compute()["item_id"].tolist() == ["a", "b"]


def test_schema_mismatch_is_a_clear_error(data_root):
    schema = pa.schema([("item_id", pa.string()), ("v", pa.list_(pa.float32(), 3))])
    frame = pd.DataFrame({"item_id": ["a"], "v": [np.zeros(2, np.float32)]})
    with pytest.raises(MmworkError, match="does not match its schema"):
        write_table(frame, table_path("toy", "bad"), schema=schema)
    assert not table_path("toy", "bad").exists()


def test_projection_and_filters(data_root):
    frame = pd.DataFrame({"item_id": [str(i) for i in range(100)], "x": np.arange(100), "y": np.arange(100) * 2})
    write_table(frame, table_path("toy", "t"))
    got = read_table("toy", "t", columns=["item_id", "y"], filters=[("x", ">=", 90)])
    assert list(got.columns) == ["item_id", "y"] and got["y"].tolist() == list(range(180, 200, 2))
    with pytest.raises(MmworkError, match="no column"):
        read_table("toy", "t", columns=["nope"])


def test_write_killed_midway_leaves_old_table_intact(data_root):
    """A `kill -9` in the middle of writing: the old table is still there, whole, and readable."""
    old = pd.DataFrame({"item_id": [f"old{i}" for i in range(10)], "x": range(10)})
    path = write_table(old, table_path("toy", "t"))
    script = textwrap.dedent(f"""
        import os, signal
        import pandas as pd, pyarrow.parquet as pq
        from mmwork.store.tables import write_table
        original = pq.ParquetWriter.write_table
        def write_then_die(self, table, *args, **kwargs):
            original(self, table.slice(0, table.num_rows // 2), *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        pq.ParquetWriter.write_table = write_then_die
        new = pd.DataFrame({{"item_id": [f"new{{i}}" for i in range(100000)], "x": range(100000)}})
        write_table(new, {str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], env=os.environ | {"MMWORK_DATA": str(data_root)})
    assert result.returncode == -9
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers, "the killed writer should have left its temporary file behind"
    pd.testing.assert_frame_equal(read_table(path), old)
    listed = list_tables()
    assert listed["table"].tolist() == ["t"] and listed["rows"].tolist() == [10]
    assert [p for p in path.parent.iterdir() if p.name.startswith(".")] == leftovers, "listing deletes nothing"
    write_table(old, path)  # the next write of the table removes its killed writer's debris
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_truncated_table_gives_one_line_error(data_root):
    path = write_table(pd.DataFrame({"item_id": ["a"] * 1000}), table_path("toy", "t"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(MmworkError, match="unreadable or truncated.*rebuild"):
        read_table(path)
    with pytest.raises(MmworkError, match="run `mmwork data get toy`"):
        read_table("toy", "missing")


def test_validate_items_and_interactions():
    with pytest.raises(MmworkError, match="missing required column.*item_id"):
        validate_items(pd.DataFrame({"id": [1]}))
    with pytest.raises(MmworkError, match="2 duplicate item_id"):
        validate_items(pd.DataFrame({"item_id": ["a", "a", "b", "b", "c"]}))
    with pytest.raises(MmworkError, match="empty item_id"):
        validate_items(pd.DataFrame({"item_id": ["a", None]}))
    items = validate_items(pd.DataFrame({"item_id": [1, 2]}))
    assert items["item_id"].tolist() == ["1", "2"]
    inter = validate_interactions(pd.DataFrame({"user_id": [7], "item_id": [1]}), items)
    assert inter["weight"].tolist() == [1.0] and inter["user_id"].tolist() == ["7"]
    with pytest.raises(MmworkError, match="not in the items table"):
        validate_interactions(pd.DataFrame({"user_id": [7], "item_id": [3]}), items)
    with pytest.raises(MmworkError, match="non-numeric"):
        validate_interactions(pd.DataFrame({"user_id": [7], "item_id": [1], "weight": ["x"]}), items)


def test_a_live_writers_temporary_is_left_alone(data_root):
    path = write_table(pd.DataFrame({"item_id": ["a"]}), table_path("toy", "t"))
    in_progress = path.with_name(f".{path.name}.tmp-{os.getpid()}-abcd1234")
    in_progress.write_bytes(b"half a table")
    list_tables()
    write_table(pd.DataFrame({"item_id": ["b"]}), path)
    assert remove_dead_temporaries(path.parent) == []
    assert in_progress.exists(), "a write still running in another process must not lose its file"
