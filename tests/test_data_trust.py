"""Data that must not silently give a wrong answer.

Bad values (nan/inf ratings, timestamps beyond 64 bits, nested JSON) are DataErrors at
file:line; repeated (user, item) rows are removed by a stated rule and counted; data
without time refuses "leave the last out" unless file order is confirmed; a dataset YAML
maps any CSV; rating specs check the data before any call; the random baseline is exact;
prompts call items what the dataset calls them. The made-up dataset here has a shape the
shipped ones lack: no timestamps, rows sorted by item id, repeated titles, half stars.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from recprompt.cli import app
from recprompt.compile.program import Program
from recprompt.data import (
    Dataset,
    Protocol,
    leave_one_out,
    load_amazon,
    load_dataset,
    load_recbole,
    ranking_examples,
    rating_examples,
)
from recprompt.errors import DataError
from recprompt.eval.cases import build_cases, default_protocol
from recprompt.library import resolve_spec_path
from recprompt.spec import Spec, load_spec

BEAUTY = "amazon-2018-all-beauty-5core"


def builtin(name: str) -> Spec:
    return load_spec(resolve_spec_path(name))


def _ml(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(r + "\n" for r in rows), encoding="ascii")
    return folder


# -- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_nan_and_inf_ratings_are_refused_with_file_and_line(tmp_path: Path, value: str) -> None:
    folder = _ml(tmp_path / "ml", ["1\t10\t4\t100", f"1\t11\t{value}\t101", "2\t10\t3\t102"])
    with pytest.raises(DataError, match=r"u\.data:2: rating .* not a finite number"):
        load_dataset(folder)
    csv = tmp_path / "r.csv"
    csv.write_text(f"u,i,r\n1,10,4\n1,11,{value}\n")
    (tmp_path / "r.yaml").write_text("path: r.csv\ncolumns: {user: u, item: i, rating: r}\n")
    with pytest.raises(DataError, match=r"r\.csv:3: rating"):
        load_dataset(tmp_path / "r.yaml")
    inter = tmp_path / "rb" / "rb.inter"
    inter.parent.mkdir()
    inter.write_text(f"user_id:token\titem_id:token\trating:float\n1\t10\t{value}\n")
    with pytest.raises(DataError, match=r"rb\.inter:2: rating"):
        load_recbole(inter)
    amazon = tmp_path / "a.json"
    amazon.write_text(json.dumps({"reviewerID": "u", "asin": "i", "overall": value}) + "\n")
    with pytest.raises(DataError, match=r"a\.json:1: overall"):
        load_amazon(amazon)


@pytest.mark.parametrize("stamp", ["99999999999999999999999", "9223372036854775808", "1e400"])
def test_timestamps_beyond_int64_are_data_errors(tmp_path: Path, stamp: str) -> None:
    folder = _ml(tmp_path / "ml", ["1\t10\t4\t100", f"1\t11\t3\t{stamp}"])
    with pytest.raises(DataError, match=r"u\.data:2: timestamp"):
        load_dataset(folder)
    amazon = tmp_path / "a.json"
    head = '{"reviewerID": "u", "asin": "i", "overall": 5, "unixReviewTime": '
    amazon.write_text(head + stamp + "}\n")
    with pytest.raises(DataError, match=r"a\.json:1: unixReviewTime"):
        load_amazon(amazon)


def test_deeply_nested_amazon_lines_are_data_errors(tmp_path: Path) -> None:
    ok = json.dumps({"reviewerID": "u", "asin": "i", "overall": 5, "unixReviewTime": 1})
    amazon = tmp_path / "a.json.gz"
    with gzip.open(amazon, "wt", encoding="utf-8") as fh:
        fh.write(ok + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"a\.json\.gz:2: .*nested"):
        load_amazon(amazon)
    nested = '{"reviewerID": ' + "[" * 500 + "]" * 500 + ', "asin": "i"}'
    amazon.with_suffix("").write_text(ok + "\n" + nested + "\n")
    with pytest.raises(DataError, match=r"a\.json:2: field 'reviewerID' is a list"):
        load_amazon(amazon.with_suffix(""))


@pytest.mark.parametrize("value", ["null", '""', '"  "'])
def test_an_amazon_review_without_a_reviewer_or_asin_value_is_a_data_error(
    tmp_path: Path, value: str
) -> None:
    """A null id became the user (or item) 'None', an empty one the user ''."""
    ok = json.dumps({"reviewerID": "u", "asin": "i", "overall": 5, "unixReviewTime": 1})
    amazon = tmp_path / "a.json"
    for field, other in (("reviewerID", '"asin": "i"'), ("asin", '"reviewerID": "u"')):
        amazon.write_text(ok + "\n" + f'{{"{field}": {value}, {other}, "overall": 4}}' + "\n")
        with pytest.raises(DataError, match=rf"a\.json:2: field '{field}' is empty"):
            load_amazon(amazon)


# -- repeated interactions -----------------------------------------------------------------


def test_repeated_pairs_keep_the_last_event_and_are_counted(tmp_path: Path) -> None:
    # user 1 rates item 10 at t=100 and again at t=300 (its last event): a leak before
    rows = ["1\t10\t2\t100", "1\t11\t4\t200", "1\t10\t5\t300", "1\t12\t3\t150"]
    rows += ["2\t10\t4\t100", "2\t10\t4\t100", "2\t11\t3\t200", "2\t12\t1\t300"]
    ds = load_dataset(_ml(tmp_path / "ml", rows))
    assert ds.stats["rows_read"] == 8
    assert ds.stats["duplicates_removed"] == 2 == ds.stats["repeated_pairs_removed"]
    assert "last" in ds.stats["dedupe_rule"]
    pairs = list(zip(ds.user.tolist(), ds.item.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs) == 6
    kept = {(u, i): (r, t) for u, i, r, t in zip(*(c.tolist() for c in (
        ds.user, ds.item, ds.rating, ds.timestamp)), strict=True)}  # fmt: skip
    assert kept[("1", "10")] == (5.0, 300)  # the last event, not the first
    for case in ranking_examples(ds, Protocol(n_negatives=0)):
        assert case.positive not in {h.item_id for h in case.history}


def test_a_positive_never_enters_the_history_even_from_a_hand_built_dataset() -> None:
    # Dataset.from_records does not deduplicate: the examples themselves must not leak
    ds = Dataset.from_records(
        "hand", ["u"] * 4 + ["v"] * 3, ["a", "b", "a", "c", "a", "b", "c"], None,
        [1, 2, 3, 4, 1, 2, 3],
    )  # fmt: skip
    by_user = {e.user_id: e for e in ranking_examples(ds, Protocol(n_negatives=0))}
    assert by_user["u"].positive == "c"
    hand = Dataset.from_records("hand", ["u"] * 3, ["a", "b", "a"], [1.0, 2.0, 3.0], [1, 2, 3])
    [case] = ranking_examples(hand, Protocol(n_negatives=0))
    assert case.positive == "a" and [h.item_id for h in case.history] == ["b"]
    [rating_case] = rating_examples(hand, Protocol(n_negatives=0, split="leave_one_out"))
    assert "a" not in {h.item_id for h in rating_case.history}


def test_amazon_every_user_dedup_and_no_leak(data_root: Path) -> None:
    beauty = data_root / BEAUTY
    if not beauty.is_dir():
        pytest.skip(f"{beauty} not present")
    ds = load_dataset(beauty)
    assert ds.stats["duplicates_removed"] == ds.stats["rows_read"] - len(ds) == 1177
    cases = ranking_examples(ds, Protocol(n_negatives=19))
    assert len(cases) == sum(1 for rows in ds.history_rows().values() if len(rows) >= 2)
    for case in cases:
        assert case.positive not in {h.item_id for h in case.history}
        assert len(set(case.candidates)) == 20
    assert any("no titles" in w for w in ds.stats["warnings"])


# -- data without time ---------------------------------------------------------------------


def _made_up(tmp_path: Path) -> Path:
    """No time column, rows sorted by item id, two titles shared, half-star ratings."""
    rng = np.random.default_rng(3)
    rows = ["reader;book;stars"]
    for item in range(1, 41):
        for user in range(1, 13):
            if rng.random() < 0.5:
                rows.append(f"r{user};b{item:03d};{rng.choice([0.5, 1.5, 2, 3.5, 4, 5])}")
    (tmp_path / "ratings.csv").write_text("\n".join(rows) + "\n")
    books = ["id,name"] + [
        f"b{i:03d},Book {i if i not in (7, 9) else 'Twin'}" for i in range(1, 41)
    ]
    (tmp_path / "books.csv").write_text("\n".join(books) + "\n")
    descriptor = tmp_path / "books.yaml"
    descriptor.write_text(
        "path: ratings.csv\n"
        "delimiter: ';'\n"
        "columns: {user: reader, item: book, rating: stars}\n"
        "items: {path: books.csv, item: id, title: name}\n"
        "item_noun: book\n"
    )
    return descriptor


def test_no_time_refuses_leave_last_out_and_offers_a_seeded_random_one(tmp_path: Path) -> None:
    ds = load_dataset(_made_up(tmp_path))
    assert ds.time == "none" and ds.item_noun == "book"
    assert any("no time field" in w for w in ds.stats["warnings"])
    with pytest.raises(DataError, match="no time field") as caught:
        ranking_examples(ds, Protocol(n_negatives=5))
    assert "--holdout random" in str(caught.value) and "--file-order-is-time" in str(caught.value)
    random_loo = Protocol(n_negatives=5, holdout="random", seed=4)
    cases = ranking_examples(ds, random_loo)
    assert len(cases) == 12 and cases == ranking_examples(ds, random_loo)  # seeded
    last_items = {u: rows[-1] for u, rows in ds.history_rows().items()}
    held_out_last = sum(c.positive == ds.item[last_items[c.user_id]] for c in cases)
    assert held_out_last < len(cases)  # not simply the highest id every time
    other = ranking_examples(ds, random_loo.model_copy(update={"seed": 5}))
    assert [c.positive for c in other] != [c.positive for c in cases]
    for case in cases:
        assert case.positive not in {h.item_id for h in case.history}
    confirmed = leave_one_out(ds, file_order_is_time=True)
    assert len(confirmed.test) == 12
    spec = builtin("rank.letters")
    protocol = default_protocol(spec, ds, holdout="random")
    assert protocol.time == "none" and protocol.model_dump()["holdout"] == "random"
    stated = default_protocol(spec, ds, file_order_is_time=True)
    assert stated.time == "file"


def test_one_timestamp_for_every_row_counts_as_no_time(tmp_path: Path) -> None:
    """A timestamp column that orders nothing must not let leave-one-out follow file order."""
    descriptor = _made_up(tmp_path)
    ratings = (tmp_path / "ratings.csv").read_text().splitlines()
    stamped = [ratings[0] + ";when"] + [f"{r};1700000000" for r in ratings[1:]]
    (tmp_path / "ratings.csv").write_text("\n".join(stamped) + "\n")
    descriptor.write_text(
        descriptor.read_text().replace("rating: stars}", "rating: stars, timestamp: when}")
    )
    ds = load_dataset(descriptor)
    assert ds.time == "none" and ds.stats["time"] == "none"
    assert any("same timestamp (1700000000)" in w for w in ds.stats["warnings"])
    with pytest.raises(DataError, match="one timestamp for every row"):
        ranking_examples(ds, Protocol(n_negatives=5))
    assert len(ranking_examples(ds, Protocol(n_negatives=5, holdout="random"))) == 12


@pytest.mark.parametrize("name", ["ratings.csv", "books.csv"])
@pytest.mark.parametrize("kind", ["named pipe (FIFO)", "folder"])
def test_a_data_file_that_is_not_a_regular_file_is_named_as_such(tmp_path, name, kind) -> None:
    """A pipe was reported as a missing file (and a reader could block on it)."""
    descriptor = _made_up(tmp_path)
    (tmp_path / name).unlink()
    if kind == "folder":
        (tmp_path / name).mkdir()
    else:
        os.mkfifo(tmp_path / name)
    with pytest.raises(DataError, match=rf"{name} is a {re.escape(kind)}, not a regular file"):
        load_dataset(descriptor)


def test_a_named_pipe_given_as_the_dataset_is_named_as_such(tmp_path) -> None:
    os.mkfifo(tmp_path / "ratings.csv")
    with pytest.raises(DataError, match=r"is a named pipe \(FIFO\), not a regular file"):
        load_dataset(tmp_path / "ratings.csv")


def test_items_missing_from_the_titles_file_are_counted_in_a_warning(tmp_path: Path) -> None:
    descriptor = _made_up(tmp_path)
    books = (tmp_path / "books.csv").read_text().splitlines()
    (tmp_path / "books.csv").write_text("\n".join(books[:31]) + "\n")  # b001..b030 only
    ds = load_dataset(descriptor)
    untitled = [i for i in ds.item_ids() if not ds.item_title(i)]
    assert untitled and all(i > "b030" for i in untitled)
    assert ds.stats["items_without_title"] == len(untitled)
    assert any(f"{len(untitled)} of {len(ds.item_ids())} items have no title" in w
               for w in ds.stats["warnings"])  # fmt: skip
    (tmp_path / "whole").mkdir()
    assert "items_without_title" not in load_dataset(_made_up(tmp_path / "whole")).stats


def test_cli_dry_run_on_data_without_time(tmp_path: Path, cli) -> None:
    descriptor = _made_up(tmp_path)
    refused = cli.invoke(app, ["dry-run", "rank.letters", "--data", str(descriptor)])
    assert refused.exit_code == 2 and "no time field" in refused.output
    ran = cli.invoke(
        app, ["dry-run", "rank.letters", "--data", str(descriptor), "--holdout", "random",
              "--negatives", "9", "--limit", "2"],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert "books I read" in ran.output  # the dataset's noun and verb, not "movies I watched"
    flat = re.sub(r"[\s│]+", "", ran.output)  # the protocol JSON wraps inside the table
    assert '"time":"none"' in flat and '"holdout":"random"' in flat


def test_dataset_yaml_joins_titles_and_keeps_twins_apart(tmp_path: Path) -> None:
    ds = load_dataset(_made_up(tmp_path))
    assert ds.item_title("b007") == ds.item_title("b009") == "Book Twin"
    assert {ds.display_title("b007"), ds.display_title("b009")} == {
        "Book Twin [id b007]",
        "Book Twin [id b009]",
    }
    assert ds.has_ratings and set(np.unique(ds.rating)) <= {0.5, 1.5, 2.0, 3.5, 4.0, 5.0}


def test_dataset_yaml_errors_say_what_and_where(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("a,b\n1,2\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("path: r.csv\ncolumns: {user: a, itme: b}\n")
    with pytest.raises(DataError, match=r"bad\.yaml: invalid dataset YAML: columns\.itme"):
        load_dataset(bad)
    bad.write_text("path: r.csv\ncolumns: {user: a, item: c}\n")
    with pytest.raises(DataError, match=r"r\.csv:1: no column 'c'"):
        load_dataset(bad)
    bad.write_text("path: missing.csv\ncolumns: {user: a, item: b}\n")
    with pytest.raises(DataError, match="not found"):
        load_dataset(bad)


def test_csv_with_a_byte_order_mark_finds_its_first_column(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("\ufeffuser,item\nu1,i1\nu1,i2\n", encoding="utf-8")
    (tmp_path / "d.yaml").write_text("path: r.csv\ncolumns: {user: user, item: item}\n")
    assert load_dataset(tmp_path / "d.yaml").user_ids() == ["u1"]


@pytest.mark.parametrize(
    "columns",
    ["{user: a, item: a}", "{user: a, item: b, timestamp: b}", "{user: a, item: b, rating: a}"],
)
def test_a_column_named_for_two_roles_is_refused(tmp_path: Path, cli, columns: str) -> None:
    """columns: {user: a, item: a} made every user a one-item user, and the run said only
    that no user had enough events."""
    (tmp_path / "r.csv").write_text("a,b\n1,2\n1,3\n2,3\n")
    (tmp_path / "d.yaml").write_text(f"path: r.csv\ncolumns: {columns}\n")
    result = cli.invoke(app, ["dry-run", "rank.letters", "--data", str(tmp_path / "d.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "is named as both" in result.output, result.output


def test_a_gzipped_csv_is_read_like_the_other_formats_gz_files(tmp_path: Path) -> None:
    """ratings.csv.gz (and a gzipped item table) was read as text: 'cannot decode as utf-8',
    with a hint at the encoding; a .gz that is not gzip, or cut short, is a DataError."""
    import gzip

    text = "\ufeffuser,item\r\nu1,i1\r\nu1,i2\r\nu2,i1\r\n"
    (tmp_path / "r.csv.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"id,name\ni1,Caf\xe9\ni2,Tea\n"))
    (tmp_path / "d.yaml").write_text(
        "path: r.csv.gz\ncolumns: {user: user, item: item}\n"
        "items: {path: t.csv.gz, item: id, title: name, encoding: latin-1}\n"
    )
    ds = load_dataset(tmp_path / "d.yaml")
    assert (ds.user_ids(), ds.item_ids(), ds.item_title("i1")) == (
        ["u1", "u2"],
        ["i1", "i2"],
        "Café",
    )
    for name, data in [("bad", text.encode()), ("cut", gzip.compress(text.encode() * 50)[:40])]:
        (tmp_path / f"{name}.csv.gz").write_bytes(data)
        (tmp_path / f"{name}.yaml").write_text(
            f"path: {name}.csv.gz\ncolumns: {{user: user, item: item}}\n"
        )
        with pytest.raises(DataError, match=rf"{name}\.csv\.gz: cannot read file"):
            load_dataset(tmp_path / f"{name}.yaml")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("encoding: bogus", r"r\.csv: unknown encoding 'bogus'"),
        ("delimiter: ''", r"r\.csv: the delimiter must be one character, got ''"),
        ("delimiter: ';;'", r"r\.csv: the delimiter must be one character, got ';;'"),
    ],
)
def test_dataset_yaml_bad_encoding_or_delimiter_is_a_data_error(
    tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / "r.csv").write_text("a,b\n1,2\n")
    (tmp_path / "d.yaml").write_text(f"path: r.csv\n{line}\ncolumns: {{user: a, item: b}}\n")
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path / "d.yaml")


def test_a_dataset_without_rows_is_refused_where_it_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("user,item\n")
    (tmp_path / "d.yaml").write_text("path: r.csv\ncolumns: {user: user, item: item}\n")
    with pytest.raises(DataError, match=r"d\.yaml: the dataset has no rows"):
        load_dataset(tmp_path / "d.yaml")
    with pytest.raises(DataError, match=r"ml: the dataset has no rows"):
        load_dataset(_ml(tmp_path / "ml", []))
    (tmp_path / "r.csv").write_text("")  # not even a header
    with pytest.raises(DataError, match=r"r\.csv: the file is empty") as caught:
        load_dataset(tmp_path / "d.yaml")
    assert "header" in caught.value.hint


def test_dry_run_says_when_the_protocol_yields_no_cases(tmp_path: Path, cli) -> None:
    rows = [f"{u}\t{u}\t4\t{u}" for u in range(1, 4)]  # one event per user: nothing to hold out
    ran = cli.invoke(app, ["dry-run", "rank.listwise", "--data", str(_ml(tmp_path / "ml", rows))])
    assert ran.exit_code == 0, ran.output
    assert "no cases" in ran.output


@pytest.mark.parametrize("row", [",i1,4", "u1,,4", "u1,  ,4"])
def test_an_empty_user_or_item_id_is_a_data_error_at_its_line(tmp_path: Path, row: str) -> None:
    """An empty id became a user (or item) named '' that every empty cell joined."""
    (tmp_path / "r.csv").write_text(f"user,item,rating\nu1,i2,3\n{row}\n")
    (tmp_path / "d.yaml").write_text("path: r.csv\ncolumns: {user: user, item: item}\n")
    with pytest.raises(DataError, match=r"r\.csv:3: empty (user|item) id"):
        load_dataset(tmp_path / "d.yaml")


@pytest.mark.parametrize(
    ("fmt", "field"),
    [("movielens", "columns: {user: a}"), ("movielens", "file_order_is_time: true"),
     ("recbole", "delimiter: ';'"), ("amazon", "encoding: latin-1"), ("p5", "items: "
     "{path: t.csv, item: i, title: t}")],
)  # fmt: skip
def test_dataset_yaml_fields_its_format_ignores_are_refused(tmp_path: Path, fmt, field) -> None:
    """They were accepted and changed nothing."""
    data = _ml(tmp_path / "ml", ["1\t1\t4\t1", "1\t2\t4\t2"])
    (tmp_path / "d.yaml").write_text(f"format: {fmt}\npath: {data.name}\n{field}\n")
    name = field.split(":")[0]
    with pytest.raises(DataError, match=rf"d\.yaml: '{name}' is not used by format {fmt}"):
        load_dataset(tmp_path / "d.yaml")


def test_undecodable_bytes_near_the_top_do_not_blame_the_header(tmp_path: Path) -> None:
    """A Latin-1 byte on line 2 was reported as 'line 1: cannot read the header'."""
    (tmp_path / "r.csv").write_bytes(b"user,item\nu1,caf\xe9\n")
    (tmp_path / "d.yaml").write_text("path: r.csv\ncolumns: {user: user, item: item}\n")
    with pytest.raises(DataError, match=r"r\.csv: cannot decode as utf-8") as caught:
        load_dataset(tmp_path / "d.yaml")
    assert "encoding" in (caught.value.hint or "")


# -- RecBole rules -------------------------------------------------------------------------


def _recbole(tmp_path: Path, item_header: str, item_rows: list[str]) -> Path:
    folder = tmp_path / "rb"
    folder.mkdir()
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"u{u}\ti{(u + i) % 6}\t4\t{u * 10 + i}" for u in range(3) for i in range(4)]
    (folder / "rb.inter").write_text("\n".join(inter) + "\n")
    (folder / "rb.item").write_text("\n".join([item_header, *item_rows]) + "\n")
    return folder


def test_recbole_title_token_seq_is_one_string(tmp_path: Path) -> None:
    folder = _recbole(
        tmp_path,
        "item_id:token\ttitle:token_seq\tclass:token_seq",
        [f"i{i}\tPlain Item 10{i} (1988)\tDrama" for i in range(6)],
    )
    ds = load_recbole(folder)
    assert ds.item_title("i0") == "Plain Item 100 (1988)"
    assert isinstance(ds.item_title("i0"), str)
    cases = list(build_cases(builtin("rank.letters"), ds, Protocol(n_negatives=1)))
    assert all(isinstance(c.label, str) and "[" not in c.label for c in cases)
    assert not ds.stats.get("warnings")


def test_recbole_other_text_field_is_used_with_a_warning_or_mapped(tmp_path: Path) -> None:
    folder = _recbole(
        tmp_path,
        "item_id:token\tname:token_seq\tblurb:token_seq",
        [f"i{i}\tNamed Thing {i}\tsome words" for i in range(6)],
    )
    ds = load_recbole(folder)
    assert ds.item_title("i1") == "Named Thing 1"
    assert any("'name:token_seq'" in w for w in ds.stats["warnings"])
    mapped = tmp_path / "rb.yaml"
    mapped.write_text("format: recbole\npath: rb\ncolumns: {title: blurb}\nitem_noun: gadget\n")
    chosen = load_dataset(mapped)
    assert chosen.item_title("i1") == "some words" and chosen.item_noun == "gadget"
    assert not any("token_seq" in w for w in chosen.stats.get("warnings", []))


# -- checks before any model call ----------------------------------------------------------


def test_rating_spec_on_data_without_ratings_fails_before_any_call(tmp_path: Path, cli) -> None:
    (tmp_path / "r.csv").write_text(
        "u,i,t\n" + "".join(f"{u},{i},{i}\n" for u in "ab" for i in range(5))
    )
    (tmp_path / "d.yaml").write_text("path: r.csv\ncolumns: {user: u, item: i, timestamp: t}\n")
    result = cli.invoke(
        app, ["eval", "p5.rating", "--data", str(tmp_path / "d.yaml"), "--out",
              str(tmp_path / "out"), "--model", "openai/none", "--api-base",
              "http://127.0.0.1:9", "--no-cache"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "needs ratings" in result.output
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_half_stars_under_a_whole_star_spec_are_warned_about(tmp_path: Path, cli) -> None:
    descriptor = _made_up(tmp_path)
    result = cli.invoke(app, ["dry-run", "p5.rating", "--data", str(descriptor), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "not on the spec's step 1" in result.output
    assert "outside the spec's scale [1, 5]" in result.output


def test_dry_run_limit_does_not_build_every_users_candidates(
    data_root: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recprompt.data.sampling as sampling

    drawn = []
    real = sampling.user_rng
    monkeypatch.setattr(
        sampling, "user_rng", lambda seed, user: drawn.append(user) or real(seed, user)
    )
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    result = cli.invoke(app, ["dry-run", "rank.letters", "--data", "ml-100k", "--limit", "3"])
    assert result.exit_code == 0, result.output
    # 943 before: every user's candidates were drawn first (dry-run reads one case past
    # the limit before it stops)
    assert 3 <= len(drawn) <= 4


# -- random baseline -----------------------------------------------------------------------


def test_random_baseline_is_its_exact_expected_value() -> None:
    from recprompt.baselines.simple import expected_random_metrics

    exact = expected_random_metrics([20, 20, 100])
    assert exact["hr@10"]["value"] == pytest.approx((10 / 20 * 2 + 10 / 100) / 3)
    ndcg20 = sum(1 / math.log2(r + 1) for r in range(1, 11)) / 20
    ndcg100 = sum(1 / math.log2(r + 1) for r in range(1, 11)) / 100
    assert exact["ndcg@10"]["value"] == pytest.approx((2 * ndcg20 + ndcg100) / 3)
    assert exact["mrr"]["value"] == pytest.approx(
        (2 * sum(1 / r for r in range(1, 21)) / 20 + sum(1 / r for r in range(1, 101)) / 100) / 3
    )
    for cell in exact.values():
        assert cell["ci_low"] == cell["value"] == cell["ci_high"] and cell["exact"]
    # the closed form is the mean of a uniformly random rank
    ranks = np.random.default_rng(0).integers(1, 21, 200_000)
    assert np.mean(ranks <= 10) == pytest.approx(
        expected_random_metrics([20])["hr@10"]["value"], abs=0.005
    )


def test_eval_reports_random_exactly(data_root: Path, tmp_path: Path) -> None:
    from recprompt.eval.evaluate import evaluate

    ds = load_dataset(data_root / "ml-100k")
    program = Program(builtin("rank.letters"))
    protocol = default_protocol(program.spec, ds, n_users=40)
    report = evaluate(
        program, ds, protocol, tmp_path / "run", baselines=["random"], baselines_only=True,
        progress=False,
    )  # fmt: skip
    table = report["baselines"]["random"]
    assert table["hr@10"]["value"] == table["hr@10"]["ci_low"] == pytest.approx(0.5)
    assert table["ndcg@10"]["ci_high"] == table["ndcg@10"]["value"]
    assert table["ndcg@10"]["exact"] and table["mrr"]["exact"]


# -- nouns ---------------------------------------------------------------------------------


def test_item_noun_comes_from_the_dataset(data_root: Path, cli, monkeypatch) -> None:
    spec = builtin("rank.letters")
    ml = load_dataset(data_root / "ml-100k")
    [case] = list(build_cases(spec, ml, default_protocol(spec, ml, n_users=1)))
    assert case.inputs["item_kind"] == "movies"
    beauty = data_root / BEAUTY
    if beauty.is_dir():
        amazon = load_dataset(beauty)
        [case] = list(build_cases(spec, amazon, default_protocol(spec, amazon, n_users=1)))
        assert case.inputs["item_kind"] == "products"
        pairwise = builtin("rank.pairwise")  # its prompt named movies in plain text before
        [case] = list(build_cases(pairwise, amazon, default_protocol(pairwise, amazon, n_users=1)))
        prompt = Program(pairwise).render(**case.inputs).text
        assert "these products" in prompt and "Which product" in prompt
        assert "movie" not in prompt
    pointwise = builtin("rank.pointwise")  # a singular default ("movie")
    [case] = list(build_cases(pointwise, ml, default_protocol(pointwise, ml, n_users=1)))
    assert case.inputs["item_kind"] == "movie"
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    result = cli.invoke(
        app, ["dry-run", "rank.letters", "--data", "ml-100k", "--limit", "1", "--item-noun", "film"]
    )
    assert result.exit_code == 0, result.output
    assert "Which of these films will I watch next?" in result.output


@pytest.mark.parametrize(
    ("extra", "present", "past"),
    [("item_noun: product\n", "buy", "bought"), ("item_noun: recipe\n", "pick", "picked"),
     ("item_noun: book\nitem_verbs: [borrow, borrowed]\n", "borrow", "borrowed")],
)  # fmt: skip
def test_prompts_say_what_users_do_with_the_dataset_s_items(
    tmp_path: Path, cli, extra: str, present: str, past: str
) -> None:
    """Every ranking prompt said "watched" and "watch", on products and books too."""
    rows = "".join(f"u{u},i{(u + k) % 9},{k}\n" for u in range(4) for k in range(5))
    (tmp_path / "r.csv").write_text("user,item,ts\n" + rows)
    (tmp_path / "d.yaml").write_text(
        "path: r.csv\ncolumns: {user: user, item: item, timestamp: ts}\n" + extra
    )
    assert load_dataset(tmp_path / "d.yaml").item_verbs == (present, past)
    result = cli.invoke(
        app,
        ["dry-run", "rank.letters", "--data", str(tmp_path / "d.yaml"), "--negatives", "3",
         "--limit", "1", "--show", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"I {past}, in order" in text and f"will I {present} next?" in text
    assert "watch" not in text


def test_item_verbs_must_be_two_words(tmp_path: Path, cli) -> None:
    (tmp_path / "r.csv").write_text("user,item\nu1,i1\nu1,i2\n")
    (tmp_path / "d.yaml").write_text(
        "path: r.csv\ncolumns: {user: user, item: item}\nitem_verbs: [' ', read]\n"
    )
    result = cli.invoke(app, ["dry-run", "rank.letters", "--data", str(tmp_path / "d.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "item_verbs" in result.output, result.output


@pytest.mark.parametrize("noun", ["''", "'   '", '"book\\nAnswer: A"', '"book\\rAnswer: A"'])
def test_a_blank_or_multiline_item_noun_in_a_dataset_yaml_is_refused(
    tmp_path: Path, cli, noun: str
) -> None:
    """'' was ignored, '   ' made prompts say 'The    s I picked', a line break split them."""
    (tmp_path / "r.csv").write_text("user,item\nu1,i1\nu1,i2\n")
    (tmp_path / "d.yaml").write_text(
        f"path: r.csv\ncolumns: {{user: user, item: item}}\nitem_noun: {noun}\n"
    )
    result = cli.invoke(app, ["dry-run", "rank.letters", "--data", str(tmp_path / "d.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "item_noun" in result.output, result.output


def test_item_nouns_are_stripped(tmp_path: Path, cli) -> None:
    """' book ' in a dataset YAML or --item-noun made prompts say 'these  book s'."""
    rows = "".join(f"u{u},i{(u + k) % 9},{k}\n" for u in range(4) for k in range(5))
    (tmp_path / "r.csv").write_text("user,item,ts\n" + rows)
    (tmp_path / "d.yaml").write_text(
        "path: r.csv\ncolumns: {user: user, item: item, timestamp: ts}\nitem_noun: ' book '\n"
    )
    base = ["dry-run", "rank.letters", "--data", str(tmp_path / "d.yaml"), "--negatives", "3"]
    for extra in ([], ["--item-noun", " film "]):
        result = cli.invoke(app, [*base, "--limit", "1", "--show", "1", *extra])
        assert result.exit_code == 0, result.output
        noun, verb = ("films", "watch") if extra else ("books", "read")
        assert f"Which of these {noun} will I {verb} next?" in result.output, result.output


# -- the README's example ------------------------------------------------------------------


def test_readme_dataset_yaml_example_loads_and_evaluates_cases(tmp_path: Path, cli) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bring your own dataset", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "books.yaml").write_text(example)
    rows = ["reader,book,stars"] + [
        f"r{u},b{(u + k) % 9},{1 + k % 5}" for u in range(6) for k in range(5)
    ]
    (tmp_path / "ratings.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "books.csv").write_text("id,name\n" + "".join(f"b{i},Book {i}\n" for i in range(9)))
    ds = load_dataset(tmp_path / "books.yaml")
    assert (len(ds), ds.n_users, ds.item_noun, ds.time) == (30, 6, "book", "none")
    assert ds.display_title("b3") == "Book 3"
    command = example.splitlines()[0].split(": ", 1)[1].split()
    assert command[:4] == ["recprompt", "eval", "rank.letters", "--data"]
    result = cli.invoke(
        app,
        ["dry-run", "rank.letters", "--data", str(tmp_path / "books.yaml"), "--holdout",
         "random", "--negatives", "3", "--limit", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "books I read" in result.output


def test_integer_ids_become_strings() -> None:
    ds = Dataset.from_records("ints", [1, 1, 1, 2, 2], [10, 11, 12, 10, 12], None, [1, 2, 3, 1, 2])
    assert ds.user_ids() == ["1", "2"] and set(ds.item.tolist()) == {"10", "11", "12"}
    cases = ranking_examples(ds, Protocol(n_negatives=0))
    assert [(c.user_id, c.positive) for c in cases] == [("1", "12"), ("2", "12")]
