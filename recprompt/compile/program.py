"""A compiled spec: a ``dspy.Module`` that renders, decodes under a constraint, and parses.

The program holds one predictor (``program.predict``, a ``dspy.Predict`` built from the spec's
signature) only so that DSPy's optimizers find it and set its ``demos``; prompts are rendered
by recprompt's own templates, because DSPy's chat field markers are too much for small base
models. Backends are resolved at call time, so rendering never needs a model.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import dspy

from recprompt.backends.base import Backend, Usage
from recprompt.backends.usage import running_usage
from recprompt.compile.prediction import PredictionBase, prediction_class
from recprompt.compile.render import Demo, Rendered, render
from recprompt.errors import BackendError, InputError, OutputError
from recprompt.spec.model import Spec
from recprompt.types import ParseFailure

__all__ = ["Program", "check_temperature", "signature_for"]

_PY_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def signature_for(spec: Spec) -> type[dspy.Signature]:
    """A DSPy signature with the spec's inputs and output, for DSPy's optimizers and tools."""
    fields: dict[str, Any] = {}
    for name, declared in spec.inputs.items():
        annotation = _PY_TYPES.get(declared.type, list[dict])
        fields[name] = (annotation, dspy.InputField(desc=declared.description or declared.type))
    fields[spec.output.name] = (spec.output.value_type(), dspy.OutputField())
    return dspy.make_signature(fields, spec.description or spec.name)


def _softmax(logps: list[float]) -> list[float]:
    top = max(logps)
    weights = [math.exp(x - top) for x in logps]
    total = sum(weights)
    return [w / total for w in weights]


def _delta(before: Usage | None, after: Usage | None) -> Usage:
    """What one call added to a backend's running usage (one call if it keeps none)."""
    if before is None or after is None:
        return Usage(calls=1)
    return Usage(**{k: getattr(after, k) - getattr(before, k) for k in Usage.__dataclass_fields__})


def check_temperature(value: Any) -> float:
    """A sampling temperature: a finite number >= 0 (NaN would also never equal itself in a
    run's settings, so that run could never be resumed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"temperature must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"temperature must be a finite number >= 0, got {value}",
            hint="pass e.g. --temperature 0 (greedy) or --temperature 0.7",
        )
    return value


def check_variant(spec: Spec, variant: str | None) -> str | None:
    """``variant`` if the spec has it (None: the default); an unknown or empty id is an
    InputError listing the known ones, before any work (eval stopped with a KeyError)."""
    if variant is not None and variant not in {v.id for v in spec.all_variants()}:
        ids = ", ".join(v.id for v in spec.all_variants())
        raise InputError(f"{spec.name}: no variant {variant!r}", hint=f"variants: {ids}")
    return variant


class Program(dspy.Module):
    """Call it with the spec's inputs to get a typed prediction; ``render`` shows the prompt."""

    def __init__(
        self,
        spec: Spec,
        *,
        variant: str | None = None,
        backend: Backend | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if not isinstance(spec, Spec):  # Program("p5.rating") failed on 'str'.inputs
            raise InputError(
                f"Program needs a Spec, got {type(spec).__name__}",
                hint="recprompt.load(NAME_OR_PATH) loads a built-in spec, a YAML file or a "
                "tuned program; recprompt.parse_spec(TEXT) parses YAML text",
            )
        if backend is not None and not any(
            callable(getattr(backend, m, None)) for m in ("generate", "score")
        ):  # backend="local" failed at the first call on 'str'.supports_logits
            raise InputError(
                f"backend must be a model backend, got {type(backend).__name__}",
                hint="e.g. backend=recprompt.backends.get_backend('local'), or leave it out "
                "for the packaged model",
            )
        self.spec = spec
        self.variant = check_variant(spec, variant)
        self.backend = backend
        self.temperature = check_temperature(temperature)
        self.seed = seed
        self.predict = dspy.Predict(signature_for(spec))
        self.usage = Usage()
        self.Prediction = prediction_class(spec)
        self.selector: Any = None
        """Picks demonstrations per input from ``demo_pool`` (see recprompt.select)."""
        self.demo_pool: list[dspy.Example] = []
        self.stage_runner: Any = None
        """Fills inputs that earlier stages produce (see recprompt.compile.stages)."""
        if spec.demos.examples:
            self.set_demos([dict(e) for e in spec.demos.examples])
        self._declared_selector()

    def _declared_selector(self) -> None:
        """Honour the spec's ``demos: {k, selector}``: ``history`` builds demonstrations from
        each input's own history; the other selectors choose among ``demos.examples`` per
        input. ``fixed`` (and a selector with no examples to choose from) keeps the fixed
        demonstrations, which DSPy optimizers may set."""
        declared = self.spec.demos
        if declared.k == 0 or declared.selector in ("none", "fixed"):
            return
        if declared.selector != "history" and not declared.examples:
            return
        from recprompt.select import attach, make_selector

        options: dict[str, Any] = {"seed": declared.seed}
        if declared.selector == "history":
            options["output"] = self.spec.output.name
            options["key"] = getattr(self.spec.output, "key", "title")
        pool = [
            dspy.Example(**e).with_inputs(*[n for n in e if n != self.spec.output.name])
            for e in declared.examples
        ]
        attach(self, make_selector(declared.selector, **options), pool)

    def __deepcopy__(self, memo: dict[int, Any]) -> Program:
        """Copies share the spec and the backend (a loaded model) but not demos or usage."""
        clone = copy.copy(self)
        clone.__dict__ = dict(self.__dict__)
        clone.predict = copy.deepcopy(self.predict, memo)
        clone.demo_pool = list(self.demo_pool)
        clone.usage = Usage()
        return clone

    # --- stages ---------------------------------------------------------------------------

    def stage_runner_for(self) -> Any:
        """The runner of this spec's ``stages:`` (built on first use), or None."""
        if self.spec.stages and self.stage_runner is None:
            from recprompt.compile.stages import StageRunner

            self.stage_runner = StageRunner(self, getattr(self, "stage_depth", 0))
        return self.stage_runner

    def fill_stages(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """``inputs`` with the outputs of earlier stages filled in (each computed once)."""
        runner = self.stage_runner_for()
        return inputs if runner is None else runner.fill(inputs)

    # --- demonstrations -------------------------------------------------------------------

    def set_demos(self, examples: list[dict[str, Any] | dspy.Example]) -> None:
        """Set demonstrations: dicts or ``dspy.Example`` with the inputs and the output."""
        self.predict.demos = [
            e if isinstance(e, dspy.Example) else dspy.Example(**e) for e in examples
        ]

    def demos(self, inputs: dict[str, Any] | None = None) -> list[Demo]:
        """Demonstrations for a call: chosen per input by the selector from the pool when
        both are set, else the fixed ones (set by DSPy optimizers, recprompt's, or the spec)."""
        examples = self.predict.demos
        if self.selector is not None and inputs is not None:
            examples = self.selector.select(inputs, self.demo_pool, self.spec.demos.k)
        if not examples:
            return []
        out = []
        output = self.spec.output.name
        for example in examples:
            data = dict(example.toDict() if hasattr(example, "toDict") else example)
            if output not in data:
                continue
            answer = data.pop(output)
            if self.spec.stages:  # a demonstration shows the stage outputs its prompt needs
                data = self.fill_stages({k: v for k, v in data.items() if k in self.spec.inputs})
            out.append(Demo({k: v for k, v in data.items() if k in self.spec.inputs}, answer))
        return out[: self.spec.demos.k] if self.spec.demos.k else out

    # --- rendering and calling ------------------------------------------------------------

    def render(self, variant: str | None = None, **inputs: Any) -> Rendered:
        """The exact prompt, constraint and token limit of a call, with no model involved."""
        chosen = self.variant if variant is None else check_variant(self.spec, variant)
        return render(self.spec, inputs, variant=chosen, demos=self.demos(inputs))

    def rank(self, candidates: list[Any], **inputs: Any) -> Any:
        """Rank ``candidates`` with the spec's ``rank:`` strategy (see recprompt.rank)."""
        from recprompt.rank import rank

        return rank(self, inputs, candidates)

    def resolve_backend(self) -> Backend:
        if self.backend is None:
            from recprompt.backends import get_backend

            self.backend = get_backend("local")
            self._checked = False
        if not getattr(self, "_checked", False):
            from recprompt.backends.capabilities import check_scoring

            check_scoring(self.spec, self.backend)  # before any call, never a silent fallback
            self._checked = True
        return self.backend

    def forward(self, *given: Any, **inputs: Any) -> PredictionBase:
        if given:  # program("x") raised "forward() takes 1 positional argument"
            raise InputError(
                f"{self.spec.name}: inputs are passed by name, got {len(given)} positional",
                hint=f"call it as program({', '.join(f'{n}=...' for n in self.spec.inputs)})",
            )
        inputs = self.fill_stages(inputs)
        rendered = self.render(**inputs)
        backend = self.resolve_backend()
        started = time.perf_counter()
        if rendered.decode != "generate" and backend.supports_logits:
            prediction = self._score(rendered, backend)
        else:
            prediction = self._generate(rendered, backend)
        prediction.usage["seconds"] = time.perf_counter() - started
        self._trace(inputs, prediction)
        return prediction

    def batch(  # type: ignore[override]
        self,
        examples: Sequence[dict[str, Any] | dspy.Example],
        num_threads: int | None = None,
        *,
        concurrency: int | None = None,
        **_dspy_options: Any,
    ) -> list[PredictionBase]:
        """Predictions for many inputs, in input order, with ``concurrency`` calls in flight.

        Each prediction depends only on its own inputs, so the result equals calling the
        program on each input in turn. The first failure is raised once the calls already
        running have finished. ``num_threads`` is accepted as DSPy's name for the same thing.
        """
        from recprompt.backends.throttle import attach_throttle
        from recprompt.eval.executor import bounded_map, check_concurrency

        n = concurrency if concurrency is not None else (num_threads or 1)
        check_concurrency(n, flag="concurrency")
        if n > 1:
            attach_throttle(self.resolve_backend(), n)
        inputs = [
            {k: v for k, v in e.items() if k in self.spec.inputs}
            if isinstance(e, dspy.Example)
            else dict(e)
            for e in examples
        ]
        results: list[Any] = [None] * len(inputs)
        failure: list[BaseException] = []
        for index, _, result in bounded_map(
            lambda given: self(**given), inputs, n, keep_going=lambda: not failure
        ):
            if isinstance(result, BaseException):
                failure.append(result)
            results[index] = result
        if failure:
            raise failure[0]
        return results

    def _generate(self, rendered: Rendered, backend: Backend) -> PredictionBase:
        try:
            completion = backend.generate(
                rendered.prompt,
                constraint=rendered.constraint,
                max_tokens=rendered.max_tokens,
                temperature=self.temperature,
                seed=self.seed,
            )
        except OutputError as exc:
            # still invalid after the server's bounded repairs: an invalid answer, counted in
            # the report (Usage.invalid_after_repair), not a crash of the whole run
            usage = getattr(exc, "usage", None)
            if not isinstance(usage, Usage):
                raise
            self.usage.add(usage)
            return self.Prediction(
                raw=None,
                variant=rendered.variant,
                decode="generate",
                usage=usage.as_dict(),
                error=exc.message,
            )
        self.usage.add(completion.usage)
        fields: dict[str, Any] = {
            "raw": completion.text,
            "variant": rendered.variant,
            "decode": "generate",
            "usage": completion.usage.as_dict(),
        }
        try:
            fields[self.spec.output.name] = self.spec.output.parse(completion.text, rendered.inputs)
        except ParseFailure as exc:
            fields["error"] = str(exc)
        return self.Prediction(**fields)

    def _score(self, rendered: Rendered, backend: Backend) -> PredictionBase:
        options = list(getattr(rendered.constraint, "options", ()))
        before = copy.copy(running_usage(backend))
        logps = backend.score(rendered.prompt, options)  # text, or chat messages
        option_prior = getattr(self, "option_prior", None)
        if option_prior is not None:  # calibrated: the estimated option prior divided out
            logps = option_prior.adjust(options, list(logps))
        usage = _delta(before, running_usage(backend))
        self.usage.add(usage)
        if len(logps) != len(options):  # zip(strict=True) raised a bare ValueError
            raise BackendError(
                f"{getattr(backend, 'name', 'the backend')} returned {len(logps)} scores for "
                f"{len(options)} options ({', '.join(options)})",
                hint="a backend's score() gives one log-probability per continuation, in order",
            )
        probs = _softmax(logps) if logps else []
        if not all(math.isfinite(p) for p in probs):
            # NaN or +inf log-probabilities (or none finite) made every score NaN: the
            # prediction (a NaN rating) counted as valid; it is an invalid answer instead
            return self.Prediction(
                raw=None,
                variant=rendered.variant,
                decode=rendered.decode,
                usage=usage.as_dict(),
                error=f"the option log-probabilities are not usable numbers: {list(logps)}",
            )
        scores = dict(zip(options, probs, strict=True))
        best = options[max(range(len(options)), key=probs.__getitem__)]
        value: Any = self.spec.output.parse(best, rendered.inputs)
        if rendered.decode == "expected":
            value = sum(float(o) * p for o, p in zip(options, probs, strict=True))
        return self.Prediction(
            **{self.spec.output.name: value},
            scores=scores,
            variant=rendered.variant,
            decode=rendered.decode,
            usage=usage.as_dict(),
        )

    def _trace(self, inputs: dict[str, Any], prediction: PredictionBase) -> None:
        """Record the call like ``dspy.Predict`` does, so bootstrapping optimizers see it."""
        trace = dspy.settings.trace
        if trace is not None and prediction.valid:
            output = dspy.Prediction(**{self.spec.output.name: prediction.value()})
            trace.append((self.predict, inputs, output))

    def __repr__(self) -> str:
        return f"Program({self.spec.name!r}, variant={self.variant!r}, demos={len(self.demos())})"
