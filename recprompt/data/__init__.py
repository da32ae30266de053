"""Datasets, splits and candidate sets: everything between a data folder and a test case.

``load_dataset`` reads MovieLens (100K, 1M, latest), Amazon review JSON, P5 sequences,
RecBole atomic files, and a dataset YAML that maps any CSV's columns; ``load_csv`` any
delimited file given a column mapping. A :class:`Protocol` declares how test cases are made
and is written into every report.
"""

from recprompt.data.amazon import load_amazon
from recprompt.data.checks import data_warnings, require_ratings
from recprompt.data.dataset import Dataset, Interaction, TieBreak, disambiguate
from recprompt.data.descriptor import load_descriptor
from recprompt.data.download import ML100K_URL, download_movielens_100k
from recprompt.data.movielens import load_ml1m, load_ml100k, load_ml_latest
from recprompt.data.p5 import load_p5
from recprompt.data.protocols import (
    Protocol,
    Split,
    for_dataset,
    leave_one_out,
    like_labels,
    random_split,
    split_dataset,
)
from recprompt.data.recbole import load_recbole
from recprompt.data.registry import load_dataset
from recprompt.data.sampling import (
    RankingExample,
    RatingExample,
    iter_ranking_examples,
    iter_rating_examples,
    ranking_examples,
    rating_examples,
    sample_candidates,
    sample_users,
    truncate_history,
)
from recprompt.data.tabular import load_csv, load_item_table

__all__ = [
    "ML100K_URL",
    "Dataset",
    "Interaction",
    "Protocol",
    "RankingExample",
    "RatingExample",
    "Split",
    "TieBreak",
    "data_warnings",
    "disambiguate",
    "download_movielens_100k",
    "for_dataset",
    "iter_ranking_examples",
    "iter_rating_examples",
    "leave_one_out",
    "like_labels",
    "load_amazon",
    "load_csv",
    "load_dataset",
    "load_descriptor",
    "load_item_table",
    "load_ml1m",
    "load_ml100k",
    "load_ml_latest",
    "load_p5",
    "load_recbole",
    "random_split",
    "ranking_examples",
    "rating_examples",
    "require_ratings",
    "sample_candidates",
    "sample_users",
    "split_dataset",
    "truncate_history",
]
