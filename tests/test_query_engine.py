"""The local query engine (pyarrow's dataset scanner, no Dask) answers exactly what the Dask read and
a plain pyarrow filter answer, on real tables split into parts; bad input fails before any compute."""
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

import mmwork
from mmwork import MmworkError, datasets, read_table
from mmwork.core.paths import processed_dir
from mmwork.search.queries import query, select
from mmwork.store.tables import table_parts, table_metadata, table_path, write_table

RATINGS = ["user_id", "item_id", "weight", "timestamp"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """speech-prompts and movielens-100k, plus the 100,000 real MovieLens ratings written as four
    parts in time order (so a time filter can skip whole row groups and files)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("data")))
        datasets.get("speech-prompts")
        datasets.get("movielens-100k")
        ratings = read_table("movielens-100k", "interactions")[RATINGS].sort_values(["timestamp", "user_id", "item_id"])
        for part in range(4):
            write_table(ratings.iloc[part * 25_000:(part + 1) * 25_000],
                        processed_dir("movielens-100k") / "ratings" / f"part-{part:05d}.parquet")
        yield ratings


def _middle_timestamp(ratings: pd.DataFrame) -> int:
    return int(ratings["timestamp"].iloc[len(ratings) // 3])


CASES = {
    "== on text": ("ratings", None, lambda r: [("user_id", "==", "13")]),
    "== on a number": ("ratings", ["item_id", "weight"], lambda r: [("weight", "==", 1.0)]),
    "!=": ("ratings", RATINGS, lambda r: [("item_id", "!=", "50"), ("weight", ">=", 4.0)]),
    "< on a number": ("ratings", ["user_id", "timestamp"], lambda r: [("timestamp", "<", _middle_timestamp(r))]),
    "in": ("ratings", ["user_id", "item_id"], lambda r: [("item_id", "in", ["50", "100", "181"])]),
    "not in": ("ratings", None, lambda r: [("user_id", "not in", ["1", "2", "13"]), ("weight", "<=", 2.0)]),
    "OR of ANDs": ("ratings", ["user_id", "item_id", "weight"],
                   lambda r: [[("weight", "==", 1.0), ("item_id", "in", ["50", "181"])], [("user_id", "==", "13")]]),
    "strings and floats": ("items@speech-prompts", ["item_id", "category", "duration_s"],
                           lambda r: [("category", "in", ["digits", "letters"]), ("duration_s", "<=", 0.7)]),
    "a list column projected": ("items", ["item_id", "title", "genres"], lambda r: [("release_year", "<", 1940)]),
}


def _where(case):
    table, columns, _ = CASES[case]
    table, _, dataset = table.partition("@")
    return dataset or "movielens-100k", table, columns


@pytest.mark.parametrize("case", list(CASES))
def test_same_rows_as_dask_and_as_a_plain_pyarrow_filter(root, case):
    dataset, table, columns = _where(case)
    filters = CASES[case][2](root)
    got = query(dataset, table, columns=columns, filters=filters)
    assert 0 < len(got) < sum(pq.ParquetFile(p).metadata.num_rows for p in _files(dataset, table))
    dask = mmwork.open(dataset, table, columns=columns, filters=filters).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, dask)  # same rows, same order, same pandas types
    plain = pq.read_table(_files(dataset, table), columns=columns, filters=filters).to_pandas()
    pd.testing.assert_frame_equal(got, plain, check_dtype=False)
    everything = pq.read_table(_files(dataset, table)).to_pandas()  # and a mask in pandas, no pushdown at all
    by_pandas = everything[_mask(everything, filters)][columns or everything.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, by_pandas, check_dtype=False)


def _mask(frame: pd.DataFrame, filters) -> pd.Series:
    """pyarrow DNF filters evaluated in plain pandas: an independent reference."""
    tests = {"==": lambda c, v: c == v, "!=": lambda c, v: c != v, "<": lambda c, v: c < v,
             "<=": lambda c, v: c <= v, ">": lambda c, v: c > v, ">=": lambda c, v: c >= v,
             "in": lambda c, v: c.isin(v), "not in": lambda c, v: ~c.isin(v)}
    groups = filters if isinstance(filters[0], list) else [filters]
    keep = pd.Series(False, index=frame.index)
    for group in groups:
        both = pd.Series(True, index=frame.index)
        for column, op, value in group:
            both &= tests[op](frame[column], value)
        keep |= both
    return keep


def _files(dataset, table):
    path = table_path(dataset, table)
    return [str(p) for p in table_parts(path)] if path.is_dir() else [str(path)]


def test_where_clauses_equal_the_same_filters(root):
    quoted = query("movielens-100k", "ratings", columns=["user_id", "item_id"],
                   where=["item_id in ['50', '100']", "weight >= 4"])
    pd.testing.assert_frame_equal(quoted, select("movielens-100k", "ratings", ["user_id", "item_id"],
                                                 [("item_id", "in", ["50", "100"]), ("weight", ">=", 4)]))
    assert set(quoted["item_id"]) == {"50", "100"}


@pytest.mark.parametrize("limit", [1, 7, 24_999, 25_001, 60_000, 200_000])
def test_limit_keeps_the_first_rows_in_table_order(root, limit):
    """Limits that end inside a part, at a part boundary and past the end (the filter keeps ~62%)."""
    filters = [("weight", ">=", 3.0)]
    got = query("movielens-100k", "ratings", filters=filters, limit=limit)
    everything = query("movielens-100k", "ratings", filters=filters)
    assert len(got) == min(limit, len(everything))
    pd.testing.assert_frame_equal(got, everything.head(limit))
    dask = mmwork.open("movielens-100k", "ratings", filters=filters).head(limit, npartitions=-1)
    pd.testing.assert_frame_equal(got, dask.reset_index(drop=True))


def test_output_files_hold_the_answer_and_nothing_half_written(root, tmp_path):
    want = query("movielens-100k", "ratings", columns=["user_id", "weight"], where=["user_id == '13'"])
    for name in ("out/answer.csv", "out/answer.parquet"):
        got = query("movielens-100k", "ratings", columns=["user_id", "weight"], where=["user_id == '13'"],
                    output=tmp_path / name)
        pd.testing.assert_frame_equal(got, want)
        back = pd.read_csv(tmp_path / name, dtype={"user_id": str}) if name.endswith(".csv") \
            else pd.read_parquet(tmp_path / name)
        pd.testing.assert_frame_equal(back, want, check_dtype=False)
    assert table_metadata(tmp_path / "out/answer.parquet")["params"]["table"] == "ratings"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["answer.csv", "answer.parquet"]  # no temporaries


def test_a_dask_cluster_by_address_gives_the_same_answer(root):
    from distributed import LocalCluster
    filters = [[("weight", "==", 1.0), ("item_id", "in", ["50", "181"])], [("user_id", "==", "13")]]
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        remote = query("movielens-100k", "ratings", filters=filters, scheduler=cluster.scheduler_address)
        remote_head = query("movielens-100k", "ratings", filters=filters, limit=5, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(remote, query("movielens-100k", "ratings", filters=filters))
    pd.testing.assert_frame_equal(remote_head, remote.head(5))


UNREACHABLE = "tcp://127.0.0.1:9"  # nothing listens: reaching it would be a different error


@pytest.mark.parametrize("kwargs, message", [
    ({"columns": ["nope"]}, "has no column 'nope'"),
    ({"where": ["nope == 1"]}, "has no column 'nope'"),
    ({"filters": [("weight", "~", 1)]}, "unknown filter operator"),
    ({"where": ["weight > high"]}, "not a number"),
    ({"where": ["user_id == 13"]}, "quote it as text"),
    ({"filters": [("item_id", "in", "50")]}, "needs a list"),
    ({"where": ["item_id in 50"]}, "needs a list"),
    ({"where": ["weight 4"]}, "cannot read --where"),
    ({"where": ["weight > 4"], "filters": [("weight", ">", 4)]}, "not both"),
    ({"limit": 0}, "--limit must be >= 1"),
    ({"output": "answer.xlsx"}, "must end in .csv or .parquet"),
])
def test_bad_queries_fail_before_compute(root, kwargs, message):
    """Each error names the problem; with an unreachable scheduler it still comes first, so no
    cluster is contacted and nothing is read."""
    for scheduler in (None, UNREACHABLE):
        with pytest.raises(MmworkError, match=message):
            query("movielens-100k", "ratings", scheduler=scheduler, **kwargs)


def test_filters_on_vector_or_list_columns_are_refused(root):
    with pytest.raises(MmworkError, match="cannot filter on the vector column"):
        select("movielens-100k", "items", filters=[("genres", "==", "Drama")])
    with pytest.raises(MmworkError, match="no table 'nope'"):
        select("movielens-100k", "nope")


def test_the_query_command_imports_no_dask(root, tmp_path):
    """`mmwork query` answers without importing Dask, torch, scikit-learn or matplotlib."""
    script = ("import sys; from mmwork.cli import main; "
              "code = main(['query', 'movielens-100k', 'ratings', '--where', \"user_id == '13'\", '--limit', '3']); "
              "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'torch', 'sklearn', "
              "'matplotlib'}); print('HEAVY', heavy); sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    header, *rows, heavy = out.stdout.strip().splitlines()
    assert heavy == "HEAVY []" and header.split() == RATINGS
    assert [row.split()[0] for row in rows] == ["13", "13", "13"]
