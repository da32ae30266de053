"""Rating, ranking, text and validity metrics (no model needed)."""

from recprompt.metrics.auc import auc
from recprompt.metrics.bootstrap import ConfidenceInterval, bootstrap_ci
from recprompt.metrics.paired import PairedDifference, paired_difference
from recprompt.metrics.ranking import (
    expected_metrics_from_scores,
    expected_metrics_per_case,
    hit_rate_at_k,
    mrr,
    ndcg_at_k,
    ndcg_at_k_graded,
    rank_of,
    ranks_from_scores,
    recall_at_k,
)
from recprompt.metrics.rating import mae, rmse
from recprompt.metrics.text import bleu4, rouge
from recprompt.metrics.validity import ValidityReport, validity_report

__all__ = [
    "ConfidenceInterval",
    "PairedDifference",
    "ValidityReport",
    "auc",
    "bleu4",
    "bootstrap_ci",
    "expected_metrics_from_scores",
    "expected_metrics_per_case",
    "hit_rate_at_k",
    "mae",
    "mrr",
    "ndcg_at_k",
    "ndcg_at_k_graded",
    "paired_difference",
    "rank_of",
    "ranks_from_scores",
    "recall_at_k",
    "rmse",
    "rouge",
    "validity_report",
]
