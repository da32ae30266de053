"""Multi-stage programs: earlier specs whose typed outputs fill inputs of a later one.

A spec's ``stages:`` names, in order, the programs that run first (PALR writes a user
profile, then ranks with it; LLM-Rec enriches every candidate item, then ranks them). Each
stage output is computed **once per key** and reused:

* the key is the stage spec's content, its variant and the inputs it reads after
  normalisation (so a ``per: user`` profile is the same for every candidate, prompt variant
  and rerun of that user, and a ``per: item`` enrichment the same for every user);
* ``per`` declares what a stage may read: ``user`` never sees candidates, ``item`` sees only
  the fields of one item of ``over``, ``case`` sees every input;
* outputs are kept in memory, in the resumable store of an evaluation (``stages.jsonl``,
  one checksummed line per key, as for cases) and, through the backend, in the disk cache,
  so a rerun makes no stage call.

Earlier stages are fixed programs (their variant and demonstrations are not tuned): the
optimizer sees only the last stage's predictor, because the runner holds the stage programs
outside the ``dspy.Module`` tree.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recprompt.backends.base import Usage
from recprompt.compile.inputs import ITEM_TYPES, ItemSeq, normalize_inputs
from recprompt.errors import SpecError
from recprompt.spec.model import Spec, StageSpec

__all__ = ["StageRunner", "attach_store", "load_stage_spec"]

MAX_DEPTH = 4
ITEM_FIELDS = {"item_title": "title", "item_id": "item_id", "item_description": "description"}
_USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "cache_hits", "seconds")


def load_stage_spec(decl: StageSpec, origin: str | None) -> Spec:
    """The stage's spec (a path relative to the parent's file, or a built-in name), with the
    stage's token bound applied."""
    from recprompt.library import resolve_spec_path
    from recprompt.spec import load_spec

    path: Path | None = None
    if origin and not origin.startswith("<"):
        local = Path(origin.split(":")[0]).parent / decl.spec
        if local.is_file():
            path = local
    spec = load_spec(path or resolve_spec_path(decl.spec))
    if decl.max_tokens is not None:
        output = spec.output.model_copy(update={"max_tokens": decl.max_tokens})
        spec = spec.model_copy(update={"output": output})
    return spec


def _spec_digest(spec: Spec) -> str:
    dump = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(dump, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class StageStats:
    """What one stage did in this process: distinct keys, where each output came from."""

    keys: set[str] = field(default_factory=set)
    computed: int = 0
    reused: int = 0
    from_store: int = 0
    usage: Usage = field(default_factory=Usage)


@dataclass
class Stage:
    decl: StageSpec
    spec: Spec
    program: Any
    digest: str

    @property
    def name(self) -> str:
        return self.decl.into


class StageRunner:
    """Fills a program's stage inputs; one per program, shared by its copies."""

    def __init__(self, parent: Any, depth: int = 0) -> None:
        from recprompt.compile.program import Program

        if depth > MAX_DEPTH:
            raise SpecError(
                f"{parent.spec.name}: stages nest deeper than {MAX_DEPTH} levels",
                hint="a stage spec probably names itself, directly or through another stage",
            )
        self.parent = parent
        self.depth = depth
        self.stages: list[Stage] = []
        self.memo: dict[str, Any] = {}
        self.store: Any = None
        self.stats: dict[str, StageStats] = {}
        available = set(parent.spec.inputs)
        for decl in parent.spec.stages:
            spec = load_stage_spec(decl, parent.spec._origin)
            self._check(decl, spec, available)
            program = Program(
                spec, variant=decl.variant, temperature=parent.temperature, seed=parent.seed
            )
            program.stage_depth = depth + 1
            self.stages.append(Stage(decl, spec, program, _spec_digest(spec)))
            self.stats[decl.into] = StageStats()

    def _check(self, decl: StageSpec, spec: Spec, available: set[str]) -> None:
        where = self.parent.spec.name
        if decl.variant is not None and decl.variant not in {v.id for v in spec.all_variants()}:
            raise SpecError(
                f"{where}: stage {decl.spec!r} has no variant {decl.variant!r}",
                hint=f"variants: {', '.join(v.id for v in spec.all_variants())}",
            )
        if decl.per == "item":
            return
        filled = {s.into for s in spec.stages}
        for name, declared in spec.inputs.items():
            source = decl.inputs.get(name, name)
            if name in filled or (not declared.required and source not in available):
                continue
            if source not in available:
                raise SpecError(
                    f"{where}: stage {decl.spec!r} needs input {name!r}, which {where} does "
                    "not declare",
                    hint=f"declare '{source}' in {where}, or map it under the stage's 'inputs:'",
                )
            kind = self.parent.spec.inputs[source].type if source in self.parent.spec.inputs else ""
            if decl.per == "user" and kind == "candidates":
                raise SpecError(
                    f"{where}: stage {decl.spec!r} is per: user but reads the candidates "
                    f"({source!r}), which differ per case",
                    hint="use per: case, or drop the candidates from the stage's inputs",
                )

    # -- keys and values -------------------------------------------------------------------

    def _stage_inputs(self, stage: Stage, source: dict[str, Any]) -> dict[str, Any]:
        values = {}
        for name in stage.spec.inputs:
            default = ITEM_FIELDS.get(name, name) if stage.decl.per == "item" else name
            key = stage.decl.inputs.get(name, default)
            value = source.get(key)
            if value is not None and value != "":
                values[name] = value
        return values

    def key(self, stage: Stage, inputs: dict[str, Any]) -> str:
        """The reuse key: stage spec content, variant and the normalised inputs it reads."""
        normal = normalize_inputs(stage.spec, inputs, strict=False)
        material = [stage.digest, stage.decl.variant, normal]
        text = json.dumps(material, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def _value(self, stage: Stage, inputs: dict[str, Any]) -> Any:
        stats = self.stats[stage.name]
        key = self.key(stage, inputs)
        stats.keys.add(key)
        if key in self.memo:
            stats.reused += 1
            return self.memo[key]
        record_id = f"stage:{stage.name}:{key}"
        if self.store is not None and record_id in self.store:
            stats.from_store += 1
            self.memo[key] = self.store.records[record_id]["value"]
            return self.memo[key]
        if stage.program.backend is None:
            stage.program.backend = self.parent.resolve_backend()
        prediction = stage.program(**inputs)
        value = prediction.value()
        if value is None:  # a failed stage feeds an empty value, and the store says why
            value = "" if stage.spec.output.type in ("text", "item", "choice") else []
        for name in _USAGE_KEYS:
            setattr(stats.usage, name, getattr(stats.usage, name) + prediction.usage.get(name, 0))
        stats.computed += 1
        self.memo[key] = value
        if self.store is not None:
            self.store.append(
                {
                    "id": record_id,
                    "stage": stage.name,
                    "spec": stage.spec.name,
                    "value": value,
                    "raw": prediction.raw,
                    "error": prediction.error,
                    "usage": prediction.usage,
                }
            )
        return value

    def _as_input(self, value: Any, declared_type: str) -> Any:
        if declared_type == "str" and isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def _enrich(self, stage: Stage, items: Any, dry: list | None = None) -> ItemSeq:
        out = ItemSeq()
        for item in items:
            enriched = copy.copy(item)
            if isinstance(item, dict) and item.get(stage.name) in (None, ""):
                inputs = self._stage_inputs(stage, item)
                if dry is None:
                    enriched[stage.name] = self._value(stage, inputs)
                else:
                    enriched[stage.name] = self._dry(stage, inputs, dry)
            out.append(enriched)
        return out

    def fill(self, inputs: dict[str, Any], *, dry: list | None = None) -> dict[str, Any]:
        """``inputs`` with every stage input filled (computed, or reused by key).

        With ``dry`` (a list), nothing is called: each stage prompt is rendered and
        appended to it as (stage, key, rendered), and placeholders fill the inputs.
        """
        values = dict(inputs)
        for stage in self.stages:
            decl = stage.decl
            if decl.per == "item":
                items = values.get(decl.over or "")
                if items:
                    values[decl.over] = self._enrich(stage, items, dry)  # type: ignore[index]
                continue
            if values.get(decl.into) not in (None, ""):
                continue  # given by the caller
            stage_inputs = self._stage_inputs(stage, values)
            if dry is None:
                value = self._value(stage, stage_inputs)
            else:
                value = self._dry(stage, stage_inputs, dry)
            declared = self.parent.spec.inputs[decl.into].type
            values[decl.into] = self._as_input(value, declared)
        return values

    def fill_items(self, list_input: str, items: list[Any]) -> list[Any]:
        """Enrich a list passed beside the inputs (a ranker's candidates) like ``list_input``."""
        for stage in self.stages:
            if stage.decl.per == "item" and stage.decl.over == list_input:
                items = self._enrich(stage, items)
        return items

    def _dry(self, stage: Stage, inputs: dict[str, Any], dry: list) -> str:
        program = stage.program
        if program.spec.stages:
            inputs = program.stage_runner_for().fill(inputs, dry=dry)
        dry.append((stage, self.key(stage, inputs), program.render(**inputs)))
        return f"<{stage.spec.name} output>"

    # -- reporting -------------------------------------------------------------------------

    def report(self, final_usage: dict[str, float] | None = None) -> dict[str, Any]:
        """Cost per stage: this invocation's calls and tokens, reuse counts, and the totals of
        every stage output in the store (all invocations), then the final stage's."""
        out: dict[str, Any] = {}
        stored: dict[str, dict[str, float]] = {}
        if self.store is not None:
            for record in self.store:
                totals = stored.setdefault(record.get("stage", "?"), dict.fromkeys(_USAGE_KEYS, 0))
                totals["outputs"] = totals.get("outputs", 0) + 1
                for name in _USAGE_KEYS:
                    totals[name] += float((record.get("usage") or {}).get(name, 0))
        for stage in self.stages:
            stats = self.stats[stage.name]
            out[stage.name] = {
                "spec": stage.spec.name,
                "variant": stage.spec.variant(stage.decl.variant).id,
                "per": stage.decl.per,
                "distinct_keys": len(stats.keys),
                "computed": stats.computed,
                "reused_in_memory": stats.reused,
                "reused_from_store": stats.from_store,
                "this_invocation": stats.usage.as_dict(),
                "all_invocations": stored.get(stage.name, {}),
            }
        if final_usage is not None:
            out["final"] = {"spec": self.parent.spec.name, "all_invocations": final_usage}
        return out


def attach_store(program: Any, path: str | Path, *, run: str | None = None) -> None:
    """Keep ``program``'s stage outputs in a resumable store at ``path`` (owned by ``run``)."""
    from recprompt.eval.store import ResultStore

    runner = program.stage_runner_for()
    if runner is not None:
        runner.store = ResultStore(path, run=run)


def dry_stages(program: Any, inputs: dict[str, Any]) -> tuple[dict[str, Any], list]:
    """Inputs with placeholders for stage outputs, and every stage prompt they need."""
    runner = program.stage_runner_for()
    if runner is None:
        return inputs, []
    dry: list = []
    return runner.fill(inputs, dry=dry), dry


def list_inputs(spec: Spec) -> list[str]:
    return [n for n, d in spec.inputs.items() if d.type in ITEM_TYPES]
