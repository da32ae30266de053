"""The spec model: one recommendation task, declared once.

The pydantic model is the single source of truth: YAML specs, the decorator API and the JSON
Schema in ``schemas/`` all come from it. Unknown keys are errors (``extra="forbid"``) so that
a typo never silently changes a task.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from recprompt.types import ItemListOutput, OutputSpec

__all__ = [
    "RANK_KS",
    "CalibrationSpec",
    "DemoSpec",
    "InputSpec",
    "InputType",
    "RankSpec",
    "Spec",
    "StageSpec",
    "TaskKind",
    "Variant",
    "computed_metrics",
    "default_metric",
    "semantic_issues",
]

InputType = Literal["str", "int", "float", "bool", "items", "history", "candidates"]
TaskKind = Literal[
    "rating",
    "sequential",
    "direct",
    "explanation",
    "review_summary",
    "pairwise",
    "binary",
    "ranking",
    "profile",
    "enrichment",
    "other",
]
SelectorName = Literal["none", "fixed", "random", "history", "knn_users", "knn_items", "mmr"]
METRIC_PATTERN = re.compile(
    r"^(rmse|mae|accuracy|auc|mrr|bleu|rouge-1|rouge-2|rouge-l|validity|(ndcg|hr|recall)@\d+)$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InputSpec(_Strict):
    """One declared input. ``history`` items carry item_id, title, rating, timestamp;
    ``candidates`` and ``items`` carry item_id and title."""

    type: InputType = Field("str", description="Kind of value the input holds.")
    optional: bool = Field(False, description="May be omitted; renders as none.")
    default: Any = Field(None, description="Value used when the input is omitted.")
    description: str | None = None
    max_length: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="For lists: keep only the last (most recent) N entries.",
    )
    count: int | None = Field(
        None, ge=1, strict=True, description="For candidates/items: how many the task expects."
    )

    @property
    def required(self) -> bool:
        return not self.optional and self.default is None


class Variant(_Strict):
    """One prompt of a family (e.g. P5's 1-1 .. 1-10). Held-out variants are for zero-shot
    evaluation only: the optimizer never selects them."""

    id: str = Field(description="Identifier within the family, e.g. '1-1'.", pattern=r"^[\w.\-]+$")
    template: str = Field(description="Jinja2 template of the prompt.")
    system: str | None = Field(None, description="Optional system part, overriding the spec's.")
    held_out: bool = Field(False, description="Reserved for zero-shot evaluation.")
    description: str | None = None

    @cached_property
    def compiled(self) -> Any:
        """The sandboxed, compiled template (compiled once per variant)."""
        from recprompt.spec.template import compile_template

        return compile_template(self.template)

    def __getstate__(self) -> dict[Any, Any]:
        """Pickle without the compiled template (a Jinja template does not pickle): a
        program shipped to a Ray actor after it has rendered recompiles it there."""
        state = super().__getstate__()
        state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k != "compiled"}
        return state


class DemoSpec(_Strict):
    """Few-shot demonstrations: how many, chosen how, written how."""

    k: int = Field(0, ge=0, strict=True, description="Number of demonstrations per prompt.")
    selector: SelectorName = Field("random", description="How demonstrations are chosen.")
    format: str | None = Field(
        None,
        description="Jinja2 template of one demonstration, with 'prompt' and 'answer'. "
        "Default: the rendered prompt followed by the answer.",
    )
    separator: str = Field("\n\n", description="Text between demonstrations and the query.")
    examples: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Fixed demonstrations: each holds the inputs and the output by name.",
    )
    seed: int = Field(0, ge=0, strict=True, description="Seed of the random selector.")


class RankSpec(_Strict):
    """How the program ranks a candidate list (LLMRank, PRP, LlamaRec, TALLRec-pointwise).

    ``auto`` follows the output type: an item list is listwise, a scored item is candidate
    likelihood, a choice among letters is one-pass lettered ranking.
    """

    strategy: Literal["auto", "listwise", "likelihood", "pointwise", "letters", "pairwise"] = Field(
        "auto", description="How candidates are ranked."
    )
    method: Literal["allpair", "sliding", "heap"] = Field(
        "heap", description="Pairwise only: all pairs, sliding window, or heap-sort top-k."
    )
    top_k: int = Field(
        10, ge=1, strict=True, description="How many top items must be ordered exactly."
    )
    bootstrap: int = Field(
        1, ge=1, strict=True, description="Shuffled candidate orders aggregated by rank (LLMRank)."
    )
    candidates_from: str = Field(
        "candidates", description="Where the candidate list comes from (data fills it)."
    )
    candidate_input: str | None = Field(
        None, description="Pointwise: the input that receives one candidate's title."
    )
    pair_inputs: tuple[str, str] = Field(
        ("item_a", "item_b"), description="Pairwise: the inputs that receive the two items."
    )
    prior: Literal["none", "popularity", "bpr"] = Field(
        "none", description="Collaborative prior fused with the LLM score."
    )
    prior_weight: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        strict=True,
        description="Weight of the prior, used as given unless tune_users is set.",
    )
    tune_users: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="recprompt eval tunes prior_weight on this many validation users, "
        "disjoint from the test users, and reports the weight and its validation curve.",
    )
    seed: int = Field(0, ge=0, strict=True, description="Seed of candidate shuffles.")

    @model_validator(mode="after")
    def _weight_needs_a_prior(self) -> RankSpec:
        """``tune_users`` or ``prior_weight`` without a prior did nothing (or failed only at
        eval, after the model was loaded)."""
        if self.prior != "none":
            return self
        if self.tune_users is not None:
            raise ValueError(
                "tune_users tunes the prior's weight, but prior is none: set prior: bpr (or "
                "popularity), or remove tune_users"
            )
        if self.prior_weight > 0:
            raise ValueError(
                f"prior_weight {self.prior_weight:g} weighs the prior, but prior is none: set "
                "prior: bpr (or popularity), or remove prior_weight"
            )
        return self


class CalibrationSpec(_Strict):
    """Take the model's option prior out of scored options (letters, choice, rating).

    ``contextual`` (Zhao et al. 2021) estimates it from content-free renderings of a few
    cases, ``pride`` (Zheng et al. 2024) from a few cases scored under cyclic permutations
    of the candidates (letters ranking only). ``recprompt eval`` estimates it on validation
    cases before the run and reports its cost and the position table before and after.
    """

    method: Literal["none", "contextual", "pride"] = Field(
        "none", description="How the option prior is estimated; none = raw scores."
    )
    samples: int = Field(
        4, ge=1, strict=True, description="Cases the prior is estimated on (no labels)."
    )
    permutations: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="PriDe: cyclic shifts per case (default: one per candidate).",
    )
    content_free: str = Field(
        "N/A", description="Contextual: the text that replaces every item of a case."
    )

    @model_validator(mode="after")
    def _settings_of_the_method(self) -> CalibrationSpec:
        """A setting the chosen method never reads was accepted and changed nothing
        (``permutations`` under contextual, ``content_free`` under pride, any under none)."""
        read: dict[str, set[str]] = {
            "none": set(),
            "contextual": {"samples", "content_free"},
            "pride": {"samples", "permutations"},
        }
        fields = type(self).model_fields
        unread = [
            name
            for name in ("samples", "permutations", "content_free")  # defaults: a dumped spec
            if name not in read[self.method] and getattr(self, name) != fields[name].default
        ]
        if unread:
            users = {"samples": "contextual and pride", "permutations": "pride"}
            raise ValueError(
                f"{unread[0]} is not used by method {self.method} (only by "
                f"{users.get(unread[0], 'contextual')}): set that method, or remove "
                f"{unread[0]}"
            )
        return self


class StageSpec(_Strict):
    """An earlier program whose typed output fills an input of this spec (PALR's profile,
    LLM-Rec's enriched items). Its output is computed once per key and reused: once per user
    (``per: user``), once per item of a list input (``per: item``), or once per case."""

    spec: str = Field(
        description="The stage's spec: a built-in name or a path (relative to this spec's file)."
    )
    into: str = Field(
        description="The input of this spec that receives the output; with per: item, the "
        "field each item of 'over' receives."
    )
    per: Literal["user", "item", "case"] = Field(
        "case",
        description="What the output depends on: 'user' (never candidates or the target), "
        "'item' (one item of 'over'), or the whole 'case'.",
    )
    over: str | None = Field(None, description="per: item: the list input whose items it fills.")
    variant: str | None = Field(None, description="The stage spec's variant (default: its first).")
    max_tokens: int | None = Field(
        None, ge=1, strict=True, description="Override the stage's token bound."
    )
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Stage input -> this spec's input (per: item: item field) that feeds it; "
        "unnamed stage inputs take the input (or item field) of the same name.",
    )

    @model_validator(mode="after")
    def _over_matches_per(self) -> StageSpec:
        if (self.per == "item") != (self.over is not None):
            raise ValueError("'over' names the list input of a per: item stage, and only then")
        return self


class Spec(_Strict):
    """A recommendation task: inputs, prompt family, output type, demonstrations, metric."""

    name: str = Field(description="Unique name, e.g. 'p5.rating'.", pattern=r"^[\w.\-]+$")
    task: TaskKind = Field(description="Kind of recommendation task.")
    source: str | None = Field(None, description="Citation of the prompt's origin.")
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(
        default_factory=dict, description="Declared inputs: a type name or a full declaration."
    )
    mode: Literal["completion", "chat"] = Field(
        "completion", description="Render plain text for base models, or chat messages."
    )
    system: str | None = Field(None, description="Optional system part (Jinja2).")
    template: str | None = Field(None, description="Jinja2 template when there are no variants.")
    variants: list[Variant] = Field(default_factory=list, description="Prompt family members.")
    output: OutputSpec
    demos: DemoSpec = Field(default_factory=DemoSpec)
    rank: RankSpec | None = Field(None, description="Rank a candidate list with this program.")
    calibration: CalibrationSpec | None = Field(
        None, description="Divide the option prior out of scored options (off by default)."
    )
    metric: str | None = Field(None, description="e.g. rmse, ndcg@10, hr@10, auc, bleu.")
    stages: list[StageSpec] = Field(
        default_factory=list,
        description="Earlier programs whose outputs fill inputs of this one, in order.",
    )

    _origin: str | None = PrivateAttr(None)

    @field_validator("inputs", mode="before")
    @classmethod
    def _short_inputs(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is not None and not METRIC_PATTERN.match(value.lower()):
            raise ValueError(
                f"unknown metric {value!r}; use rmse, mae, accuracy, auc, mrr, bleu, "
                "rouge-1/2/l, validity, ndcg@K, hr@K or recall@K"
            )
        return value.lower() if value else value

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if not self.template and not self.variants:
            raise ValueError("a spec needs a 'template' or at least one entry in 'variants'")
        if self.template and self.variants:
            raise ValueError("give either 'template' or 'variants', not both")
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise ValueError(f"variant ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        if self.variants and all(v.held_out for v in self.variants):
            raise ValueError("every variant is held out; leave at least one for use and tuning")
        return self

    def variant(self, variant_id: str | None = None) -> Variant:
        """The variant to render: the given id, else the first one not held out."""
        return self._variants_by_id[variant_id]

    @cached_property
    def _variants_by_id(self) -> dict[str | None, Variant]:
        """Variants by id, and the default one under None (rendering looks this up per call)."""
        family = self.variants or [Variant(id="default", template=self.template or "")]
        by_id: dict[str | None, Variant] = {v.id: v for v in family}
        by_id[None] = next(v for v in family if not v.held_out)
        return by_id

    def all_variants(self) -> list[Variant]:
        return self.variants or [self.variant()]


RANK_KS = (1, 5, 10)
"""The cut-offs at which evaluation computes hr@K and ndcg@K (see recprompt.eval.scoring)."""


def computed_metrics(spec: Spec) -> tuple[str, ...]:
    """The metrics evaluation and the optimizer compute for this spec's output type."""
    output_type = spec.output.type
    if spec.rank is not None or output_type in ("item", "item_list"):
        return ("mrr", *(f"{m}@{k}" for m in ("hr", "ndcg") for k in RANK_KS))
    if output_type == "rating":
        return ("rmse", "mae")
    if output_type == "choice":
        return ("accuracy", "auc")
    return ("bleu", "rouge-1", "rouge-2", "rouge-l", "validity")


def default_metric(spec: Spec) -> str:
    """The spec's metric, else the first its output type computes (rmse, mrr, accuracy...)."""
    if spec.metric:
        return spec.metric
    if spec.rank is not None or spec.output.type in ("item", "item_list"):
        return f"ndcg@{RANK_KS[-1]}"
    return computed_metrics(spec)[0]


def reserved_output_names() -> frozenset[str]:
    """Names a prediction already has (fields, methods, pydantic's ``model_*``): an output
    called ``error`` or ``model_dump`` would overwrite them."""
    from recprompt.compile.prediction import PredictionBase

    names = set(PredictionBase.model_fields) | {
        n for n in dir(PredictionBase) if not n.startswith("__")
    }
    return frozenset(names)


def _name_issues(spec: Spec) -> list[tuple[tuple[str, ...], str, str]]:
    name = spec.output.name
    if not name.isidentifier() or name.startswith("_"):
        return [
            (
                ("output", "name"),
                f"output name {name!r} is not a valid field name",
                "use letters, digits and '_' (not first), e.g. 'rating' or 'items'",
            )
        ]
    if name in reserved_output_names() or name.startswith("model_"):
        return [
            (
                ("output", "name"),
                f"output name {name!r} clashes with a field every prediction has",
                "rename the output (e.g. 'answer'); reserved: raw, scores, error, variant, "
                "decode, usage, valid, value and pydantic's model_* names",
            )
        ]
    if name in spec.inputs:
        return [
            (
                ("output", "name"),
                f"output name {name!r} is also an input's name",
                "give the output and the inputs distinct names",
            )
        ]
    return []


def _metric_issues(spec: Spec) -> list[tuple[tuple[str, ...], str, str]]:
    if spec.metric is None:
        return []
    computed = computed_metrics(spec)
    if spec.metric in computed:
        return []
    kind = "a ranking" if spec.rank is not None else f"an output of type {spec.output.type}"
    hint = f"use one of: {', '.join(computed)}"
    if spec.metric.startswith("recall@"):
        hint += " (hr@K equals recall@K with one held-out item)"
    return [(("metric",), f"metric {spec.metric!r} is not computed for {kind}", hint)]


def _stage_issues(spec: Spec) -> list[tuple[tuple[Any, ...], str, str]]:
    issues = []
    for n, stage in enumerate(spec.stages):
        target = stage.over if stage.per == "item" else stage.into
        declared = spec.inputs.get(target or "")
        if declared is None:
            issues.append(
                (
                    ("stages", n, "over" if stage.per == "item" else "into"),
                    f"stage {stage.spec!r} fills input {target!r}, which the spec does not declare",
                    f"declare '{target}' under inputs, or fix the stage's name",
                )
            )
        elif stage.per == "item" and declared.type not in ("candidates", "items", "history"):
            issues.append(
                (
                    ("stages", n, "over"),
                    f"stage {stage.spec!r} runs per item of {target!r}, which is not a list "
                    f"of items (type {declared.type})",
                    "point 'over' at a candidates, items or history input",
                )
            )
    return issues


def semantic_issues(spec: Spec) -> list[tuple[tuple[str, ...], str, str]]:
    """Checks across fields, each with the path it concerns: (path, problem, what to do)."""
    from recprompt.rank.calibration import calibration_issues

    issues = [*_stage_issues(spec), *calibration_issues(spec), *_source_issues(spec)]
    issues += _rank_issues(spec) + _strategy_issues(spec)
    return [*issues, *_name_issues(spec), *_metric_issues(spec), *_default_issues(spec)]


def _default_issues(spec: Spec) -> list[tuple[tuple[str, ...], str, str]]:
    """A default must be a value of its input's type: ``{type: int, default: abc}`` passed
    validate, and every call that omitted the input then failed on its default."""
    from recprompt.compile.inputs import _coerce
    from recprompt.errors import InputError

    issues: list[tuple[tuple[str, ...], str, str]] = []
    for name, declared in spec.inputs.items():
        if declared.default is None:
            continue
        try:
            _coerce(name, declared, declared.default)
        except InputError as exc:
            issues.append(
                (
                    ("inputs", name, "default"),
                    f"{exc.message} as its default",
                    f"give a default of type {declared.type}, or drop 'default:' (optional: true "
                    "renders an omitted input as none)",
                )
            )
    return issues


def _source_issues(spec: Spec) -> list[tuple[tuple[str, ...], str, str]]:
    """An item output must draw from a declared candidate input that holds enough items."""
    issues: list[tuple[tuple[str, ...], str, str]] = []
    source = getattr(spec.output, "source", None)
    if source is None:
        return issues
    declared = spec.inputs.get(source)
    if declared is None or declared.type not in ("candidates", "items"):
        issues.append(
            (
                ("output", "from"),
                f"output draws items from input {source!r}, which is not declared as "
                "candidates or items",
                f"declare '{source}: candidates' under inputs, or set output 'from:'",
            )
        )
    elif (
        isinstance(spec.output, ItemListOutput)
        and declared.count is not None
        and spec.output.k > declared.count
    ):
        issues.append(
            (
                ("output", "k"),
                f"output k={spec.output.k} is larger than the {declared.count} candidates "
                f"of input {source!r}: no list of {spec.output.k} distinct items exists",
                f"lower k to at most {declared.count}, or raise the candidates' count",
            )
        )
    return issues


def _strategy_issues(spec: Spec) -> list[tuple[tuple[str, ...], str, str]]:
    """Settings of one strategy under another changed nothing (``method: allpair`` on
    letters), and the inputs pointwise and pairwise write candidates into must be declared:
    both were found only at the first case, after the model was loaded."""
    rank = spec.rank
    if rank is None or rank.strategy == "auto":
        return []
    issues: list[tuple[tuple[str, ...], str, str]] = []
    only = {"method": "pairwise", "pair_inputs": "pairwise", "candidate_input": "pointwise"}
    defaults = RankSpec.model_fields
    for name, strategy in only.items():
        if rank.strategy != strategy and getattr(rank, name) != defaults[name].default:
            issues.append(
                (
                    ("rank", name),
                    f"rank.{name} is used by strategy {strategy} only, but the strategy is "
                    f"{rank.strategy}",
                    f"remove rank.{name}, or set rank.strategy: {strategy}",
                )
            )
    declared = [n for n in spec.inputs if spec.inputs[n].type == "str"]
    if rank.strategy == "pointwise":
        name = rank.candidate_input or next(
            (n for n in ("item_title", "target_title", "item") if n in spec.inputs), None
        )
        if name is None or name not in spec.inputs:
            issues.append(
                (
                    ("rank", "candidate_input"),
                    "pointwise ranking writes each candidate into an input, but "
                    + (f"{name!r} is not declared" if name else "none is named"),
                    "set rank.candidate_input to a declared str input"
                    + (f" ({', '.join(declared[:5])})" if declared else ", e.g. item_title"),
                )
            )
    if rank.strategy == "pairwise":
        missing = [n for n in rank.pair_inputs if n not in spec.inputs]
        if missing:
            issues.append(
                (
                    ("rank", "pair_inputs"),
                    f"pairwise ranking writes the two items into inputs "
                    f"{', '.join(map(repr, rank.pair_inputs))}, but {missing[0]!r} is not "
                    "declared",
                    "declare both under 'inputs:' (e.g. 'item_a: str'), or name declared "
                    "inputs in rank.pair_inputs",
                )
            )
    return issues


def _rank_issues(spec: Spec) -> list[tuple[tuple[str, ...], str, str]]:
    """A ranking must be able to order its top K, and letters must label every candidate."""
    if spec.rank is None:
        return []
    declared = spec.inputs.get(spec.rank.candidates_from)
    count = declared.count if declared is not None else None
    if not count:
        return []
    issues: list[tuple[tuple[str, ...], str, str]] = []
    if spec.rank.top_k > count:
        issues.append(
            (
                ("rank", "top_k"),
                f"rank.top_k={spec.rank.top_k} is larger than the {count} candidates of input "
                f"{spec.rank.candidates_from!r}",
                f"lower top_k to at most {count}, or raise the candidates' count",
            )
        )
    options = getattr(spec.output, "options", None)
    lettered = spec.rank.strategy == "letters" or (
        spec.rank.strategy == "auto" and options and len(options) > 2
    )
    letters = bool(options) and all(len(o) == 1 and o.isupper() for o in options)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # what the lettered filter labels, in order
    single = bool(options) and all(len(o) == 1 and o.isalpha() for o in options)
    ranked_by_letter = (spec.rank.strategy == "letters" and single) or (
        spec.rank.strategy == "auto" and letters and len(options) > 2
    )  # as recprompt.rank.runner.resolve_strategy decides
    if spec.rank.strategy == "letters" and options and not single:
        issues.append(
            (
                ("output", "options"),
                f"strategy letters scores one letter per candidate, but the options are "
                f"{', '.join(options[:6])}{', ...' if len(options) > 6 else ''}",
                "list single capital letters A, B, C, ... as the options",
            )
        )
    elif ranked_by_letter and "".join(options) != alphabet[: len(options)]:
        issues.append(
            (
                ("output", "options"),
                f"letters ranking labels the candidates {', '.join(alphabet[:3])}, ... in "
                f"order, but the options are {', '.join(options[:6])}"
                f"{', ...' if len(options) > 6 else ''}: a candidate's letter could be no "
                "option, or an option no candidate's letter",
                f"list the first {len(options)} capital letters in order "
                f"(A to {alphabet[len(options) - 1]})"
                if len(options) <= 26
                else "list at most 26 capital letters, A to Z",
            )
        )
    elif lettered and letters and len(options) < count:
        issues.append(
            (
                ("output", "options"),
                f"{len(options)} letter options label only {len(options)} of the {count} "
                "candidates: the others could never be ranked",
                f"list {count} letters (A to {chr(ord('A') + count - 1)})"
                if count <= 26
                else f"lower the candidates' count to at most {len(options)}",
            )
        )
    return issues
