"""Split files as other libraries write them: the rating column under the peers' names (``rating``,
``score``, RecBole's typed ``rating:float`` headers, tab-separated), and a threshold without any
rating column refused with one line instead of silently counting every rating as 1.0."""
import numpy as np
import pandas as pd
import pytest

from mmwork import MmworkError, datasets
from mmwork.cli import main
from mmwork.evaluation import split_from_files


@pytest.fixture(scope="module")
def rated(movielens):
    """A Cornac-style global 80/20 split of the real MovieLens-100K ratings, with the rating column
    named ``rating``; the item catalogue."""
    inter, items = movielens
    frame = inter[["user_id", "item_id", "weight"]].rename(columns={"weight": "rating"})
    is_test = np.zeros(len(frame), bool)
    is_test[np.random.default_rng(7).permutation(len(frame))[: len(frame) // 5]] = True
    return frame[~is_test], frame[is_test], items["item_id"]


def _write(folder, train, test, **csv):
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False, **csv)
    test.to_csv(folder / "test.csv", index=False, **csv)
    return folder


@pytest.mark.parametrize("name", ["rating", "score", "weight"])
def test_the_peers_rating_column_names_are_read(rated, tmp_path, name):
    train, test, item_ids = rated
    folder = _write(tmp_path, train.rename(columns={"rating": name}), test.rename(columns={"rating": name}))
    split = split_from_files(folder / "train.csv", None, folder / "test.csv", item_ids=item_ids, threshold=4)
    relevant = int((test["rating"] >= 4).sum())
    assert split.test.nnz == len(test)
    assert int((split.test.matrix.data >= 4).sum()) == relevant > 0
    assert sorted(np.unique(split.train.matrix.data)) == [1, 2, 3, 4, 5], "the ratings themselves, not 1.0"


def test_recbole_typed_tab_separated_headers(rated, tmp_path):
    train, test, item_ids = rated
    typed = {"user_id": "user_id:token", "item_id": "item_id:token", "rating": "rating:float"}
    folder = _write(tmp_path, train.rename(columns=typed), test.rename(columns=typed), sep="\t")
    split = split_from_files(folder / "train.csv", None, folder / "test.csv", item_ids=item_ids, threshold=4)
    plain = split_from_files(train, None, test, item_ids=item_ids, threshold=4)
    assert split.data_hash() == plain.data_hash()


def test_a_threshold_without_a_rating_column_is_refused(rated, tmp_path):
    train, test, item_ids = rated
    folder = _write(tmp_path, train.drop(columns="rating"), test.rename(columns={"rating": "stars"}))
    with pytest.raises(MmworkError, match=r"needs a rating column in .*train\.csv, one of \['weight', 'rating', "
                                          r"'score'\].*it has \['user_id', 'item_id'\]"):
        split_from_files(folder / "train.csv", None, folder / "test.csv", item_ids=item_ids, threshold=4)
    # Without a threshold every listed interaction is relevant: implicit feedback needs no rating.
    split = split_from_files(folder / "train.csv", None, folder / "test.csv", item_ids=item_ids)
    assert split.train.nnz == len(train) and set(np.unique(split.train.matrix.data)) == {1.0}


def test_non_numeric_ratings_are_refused(tmp_path):
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"], "rating": ["4", "good"]})
    folder = _write(tmp_path, frame, frame)
    with pytest.raises(MmworkError, match="1 non-numeric or empty rating"):
        split_from_files(folder / "train.csv", None, folder / "test.csv", threshold=4)


def test_cli_split_dir_with_a_rating_column(rated, data_root, tmp_path, capsys):
    datasets.get("movielens-100k")  # the catalogue the CLI reads, in the private data root
    train, test, _ = rated
    folder = _write(tmp_path / "split", train, test)
    base = ["recommend", "evaluate", "--models", "pop", "--split-dir", str(folder), "--threshold", "4"]
    assert main(base) == 0, capsys.readouterr().err
    assert "rating >= 4" in capsys.readouterr().out
    _write(folder, train.drop(columns="rating"), test.drop(columns="rating"))
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmwork: error: a relevance threshold (--threshold 4) needs a rating column")
    assert len(err.strip().splitlines()) == 1
