"""Loaders: the real ml-100k and Amazon files, plus tmp fixtures for every other format."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from recprompt.data import (
    Dataset,
    load_amazon,
    load_csv,
    load_dataset,
    load_ml1m,
    load_ml_latest,
    load_p5,
    load_recbole,
)
from recprompt.errors import DataError

BEAUTY = "amazon-2018-all-beauty-5core"


def test_ml100k_real_counts_and_side_tables(data_root: Path) -> None:
    ds = load_dataset("ml-100k", root=data_root)
    assert (len(ds), ds.n_users, ds.n_items) == (100_000, 943, 1682)
    assert ds.stats["duplicates_removed"] == 0
    assert ds.item_title("1") == "Toy Story (1995)"
    assert ds.items["1"]["genres"] == ["Animation", "Children's", "Comedy"]
    assert any("Mis\u00e9rables" in (m["title"] or "") for m in ds.items.values())  # latin-1
    assert ds.users["1"] == {
        "age": 24,
        "gender": "M",
        "occupation": "technician",
        "zip_code": "85711",
    }
    # file order is kept (row 0 of u.data is "196 242 3 881250949")
    assert (ds.user[0], ds.item[0], ds.rating[0], ds.timestamp[0]) == ("196", "242", 3.0, 881250949)
    assert sorted(np.unique(ds.rating).tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert sum(ds.popularity().values()) == 100_000


def test_load_by_env_var(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    assert len(load_dataset("ml-100k")) == 100_000
    assert len(load_dataset(data_root / "ml-100k" / "u.data")) == 100_000  # a marker file works too


def test_amazon_real_dedupe_counts(data_root: Path) -> None:
    beauty = data_root / BEAUTY
    if not beauty.is_dir():
        pytest.skip(f"{beauty} not present")
    ds = load_dataset(beauty)
    assert ds.stats["rows_read"] == 5269
    assert ds.stats["key_duplicates"] == 1108
    # 69 more rows repeat a (user, item) at another time: one row per pair, the last kept
    assert ds.stats["repeated_pairs_removed"] == 69
    assert ds.stats["duplicates_removed"] == 1108 + 69
    assert ds.stats["exact_duplicates"] == 1027
    assert len(ds) == 5269 - 1108 - 69
    assert len(set(zip(ds.user.tolist(), ds.item.tolist(), strict=True))) == len(ds)
    assert (ds.n_users, ds.n_items) == (991, 85)
    assert ds.item_title(ds.item[0]) is None  # this release has no titles
    keys = set(zip(ds.user.tolist(), ds.item.tolist(), ds.timestamp.tolist(), strict=True))
    assert len(keys) == len(ds)
    text = ds.texts[(ds.user[0], ds.item[0])]
    assert "reviewText" in text and "summary" in text
    exact = load_amazon(beauty / "All_Beauty_5.json.gz", dedupe="exact")
    assert exact.stats["duplicates_removed"] == 5269 - len(exact)
    assert len(exact) == len(ds)  # every rule ends with one row per (user, item)


def _write_amazon(path: Path, lines: list[str]) -> None:
    data = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(data)
    else:
        path.write_text(data, encoding="utf-8")


def test_amazon_2014_and_2018_fields(tmp_path: Path) -> None:
    rec14 = {"reviewerID": "U1", "asin": "A", "overall": 4.0, "unixReviewTime": 10,
             "reviewText": "good", "summary": "ok", "helpful": [1, 2]}  # fmt: skip
    rec18 = {"reviewerID": "U1", "asin": "B", "overall": 5.0, "unixReviewTime": 20,
             "reviewText": "great", "summary": "wow", "vote": "3", "style": {"Size:": "1"},
             "verified": True}  # fmt: skip
    path = tmp_path / "reviews.json.gz"
    _write_amazon(path, [json.dumps(rec14), json.dumps(rec18), json.dumps(rec18)])
    ds = load_amazon(path)
    assert len(ds) == 2 and ds.stats["duplicates_removed"] == 1
    assert ds.texts[("U1", "B")]["vote"] == "3"
    assert ds.texts[("U1", "A")]["summary"] == "ok"
    # Python-literal lines (raw 2014 dumps) parse too
    py = tmp_path / "old.json"
    _write_amazon(py, [repr(rec14)])
    assert load_amazon(py).item.tolist() == ["A"]


def test_amazon_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    _write_amazon(path, ['{"reviewerID": "U", "asin": "A", "unixReviewTime": 1}', "{oops"])
    with pytest.raises(DataError) as err:
        load_amazon(path)
    assert err.value.location is not None and err.value.location.line == 2
    assert f"{path}:2" in str(err.value)


def _ml100k_fixture(root: Path, bad_line: str | None = None) -> Path:
    d = root / "ml-100k"
    d.mkdir()
    rows = ["1\t10\t5\t100", "1\t11\t3\t100", "2\t10\t4\t50"]
    if bad_line:
        rows.append(bad_line)
    (d / "u.data").write_text("\n".join(rows) + "\n")
    flags = "|".join(["0"] * 19)
    (d / "u.item").write_bytes(
        f"10|Les Mis\xe9rables (1995)|01-Jan-1995||u|{flags}\n".encode("latin-1")
    )
    return d


def test_ml100k_fixture_and_malformed(tmp_path: Path) -> None:
    d = _ml100k_fixture(tmp_path)
    ds = load_dataset("ml-100k", root=tmp_path)
    assert ds.item_title("10") == "Les Mis\u00e9rables (1995)"
    assert ds.item_title("11") is None
    assert d.name == "ml-100k"
    (tmp_path / "other").mkdir()
    bad = _ml100k_fixture(tmp_path / "other", bad_line="3\t1")
    with pytest.raises(DataError, match=r"u\.data:4"):
        load_dataset(bad)


def test_ml1m_fixture(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    movies = "1193::Cuckoo's Nest (1975)::Drama\n661::Caf\xe9 (1996)::Animation|Musical\n"
    (tmp_path / "movies.dat").write_bytes(movies.encode("latin-1"))
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n")
    ds = load_dataset(tmp_path)
    assert ds.stats["format"] == "movielens-1m"
    assert ds.items["661"] == {"title": "Caf\u00e9 (1996)", "genres": ["Animation", "Musical"]}
    assert ds.users["1"]["gender"] == "F"
    assert load_ml1m(tmp_path).timestamp.tolist() == [978300760, 978302109]


def test_ml_latest_fixture(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,964982703\n")
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,"Toy Story, The (1995)",Adventure|Animation\n'
    )
    ds = load_ml_latest(tmp_path)
    assert ds.rating.tolist() == [4.5]
    assert ds.item_title("1") == "Toy Story, The (1995)"
    assert load_dataset(tmp_path).stats["format"] == "movielens-latest"


def test_p5_fixture(tmp_path: Path) -> None:
    (tmp_path / "sequential_data.txt").write_text("1 3 2 5\n2 1 4\n")
    (tmp_path / "datamaps.json").write_text(
        json.dumps({"id2item": {"3": "B00X"}, "id2user": {"1": "AU"}})
    )
    ds = load_dataset(tmp_path)
    assert len(ds) == 5 and np.isnan(ds.rating).all() and (ds.timestamp == 0).all()
    # no timestamps: the index tie rule keeps P5's sequence order
    assert [i.item_id for i in ds.histories()["1"]] == ["3", "2", "5"]
    assert ds.items["3"]["raw_id"] == "B00X" and ds.users["1"]["raw_id"] == "AU"
    (tmp_path / "sequential_data.txt").write_text("1 3\n7\n")
    with pytest.raises(DataError, match=r"sequential_data\.txt:2"):
        load_p5(tmp_path)


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (b"[1, 2]", "a JSON list, not an object"),
        (b'{"id2item": [1, 2]}', "'id2item' is a JSON list, not an object"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["list", "id2item list", "not utf-8", "deep"],
)
def test_p5_datamaps_of_the_wrong_shape_is_a_data_error(tmp_path: Path, maps, message) -> None:
    """Each was a traceback (AttributeError, UnicodeDecodeError, RecursionError)."""
    (tmp_path / "sequential_data.txt").write_text("1 3 2 5\n2 1 4\n")
    (tmp_path / "datamaps.json").write_bytes(maps)
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_p5(tmp_path)
    assert str(caught.value.location).endswith("datamaps.json") and caught.value.hint


def test_recbole_fixture(tmp_path: Path) -> None:
    (tmp_path / "ml.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t5\t4\t881250949\n2\t5\t3\t881250950\n"
    )
    (tmp_path / "ml.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "5\tToy Story\t1995\tAnimation Comedy\n"
    )
    (tmp_path / "ml.user").write_text("user_id:token\tage:token\n1\t24\n")
    ds = load_dataset(tmp_path)
    assert ds.name == "ml" and len(ds) == 2
    assert ds.item_title("5") == "Toy Story"
    assert ds.items["5"]["genres"] == ["Animation", "Comedy"]
    assert ds.users["1"] == {"age": "24"}
    (tmp_path / "ml.inter").write_text("user_id:token\titem_id:token\n1\n")
    with pytest.raises(DataError, match=r"ml\.inter:2"):
        load_recbole(tmp_path / "ml.inter")


def test_generic_csv(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("uid;iid;stars;when;name\nu1;i1;5;3;Dune\nu1;i2;2;1;Heat\n")
    ds = load_csv(
        path, user="uid", item="iid", rating="stars", timestamp="when", title="name", delimiter=";"
    )
    assert isinstance(ds, Dataset) and ds.item_title("i2") == "Heat"
    assert [i.item_id for i in ds.histories()["u1"]] == ["i2", "i1"]
    with pytest.raises(DataError, match="no column 'user'"):
        load_csv(path, user="user", item="iid", delimiter=";")
    path.write_text("uid,iid,stars\nu1,i1,x\n")
    with pytest.raises(DataError, match=r"events\.csv:2"):
        load_csv(path, user="uid", item="iid", rating="stars")


def test_missing_dataset_says_where_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECPROMPT_DATA", raising=False)
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", root=tmp_path)
    text = str(err.value)
    assert str(tmp_path / "ml-100k") in text and "RECPROMPT_DATA" in text and "--data" in text
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="cannot tell the dataset format"):
        load_dataset(tmp_path / "junk")
