"""The ``recprompt`` command line: validate, list, render, dry-run, run, eval, compare, optimize.

Every user mistake surfaces as a :class:`RecpromptError`; the CLI prints its message (with
file:line:column for specs) and exits with status 2, never with a traceback. Both consoles
print with Rich markup off: spec names, variant ids, inputs, titles and paths are user text
and are printed literally (``[/x]`` or ``[bold red]`` in a title is shown, never interpreted);
styling goes through ``style=`` and :class:`rich.text.Text`, never through markup strings.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from recprompt.cli_args import (
    SAMPLERS,
    check_candidate_flags,
    check_no_model_flags,
    data_path,
    data_reads,
    input_paths,
    make_protocol,
    out_path,
    parse_baselines,
    parse_input,
)
from recprompt.errors import InputError, RecpromptError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Declarative prompt programs for recommendation with LLMs.",
)
out = Console(soft_wrap=True, markup=False, highlight=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False, emoji=False)
F = TypeVar("F", bound=Callable[..., Any])


def print_error(exc: BaseException) -> None:
    err.print(Text.assemble(("error:", "bold red"), " ", str(exc)))


def warn(message: str) -> None:
    err.print(Text.assemble(("warning:", "bold yellow"), " ", message))


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """An option callback that accepts only ``choices`` (a usage error, exit status 2)."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def guarded(command: F) -> F:
    """Turn RecpromptError into a clear message and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RecpromptError as exc:
            print_error(exc)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:  # 130, like a shell; said, not silent
            err.print(
                "interrupted: every file already written is whole; run the same command "
                "again to go on (eval skips the cases it finished; model answers already "
                "given come from the disk cache)",
                style="yellow",
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


SpecArg = Annotated[str, typer.Argument(help="Spec file, tuned program (.json) or built-in name.")]
VariantOpt = Annotated[str | None, typer.Option("--variant", "-v", help="Prompt variant id.")]
InputOpt = Annotated[str, typer.Option("--input", "-i", help="JSON object or @file.json.")]


@app.command()
@guarded
def validate(
    paths: Annotated[list[str], typer.Argument(help="Spec files, folders, or built-in names.")],
) -> None:
    """Check specs: YAML, keys, types, templates and outputs, before any run."""
    from recprompt.library import resolve_spec_path
    from recprompt.spec import load_spec

    files: list[Path] = []
    for given in paths:
        if not given:  # Path("") is the current folder: every YAML below it
            raise InputError("an empty path was given", hint="pass spec files, folders or names")
        path = Path(given)
        if path.is_dir():
            try:
                files += sorted(p for p in path.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
            except OSError as exc:  # e.g. /proc, whose entries vanish while listed
                raise InputError(f"cannot list the folder {given}: {exc.strerror or exc}") from None
        else:
            files.append(resolve_spec_path(given))
    if not files:
        raise InputError(f"no .yaml specs found under {', '.join(paths)}")
    failures = 0
    for file in files:
        try:
            spec = load_spec(file)
        except RecpromptError as exc:
            failures += 1
            err.print(Text.assemble(("✗", "red"), " ", str(exc)))
            continue
        variants = len(spec.all_variants())
        out.print(Text.assemble(("✓", "green"), f" {file}  {spec.name} ({variants} variant(s))"))
    if failures:
        err.print(f"{failures} of {len(files)} spec(s) invalid")
        raise typer.Exit(2)


@app.command("list")
@guarded
def list_specs() -> None:
    """Show the built-in specs and their prompt variants (* = held out)."""
    from recprompt.library import builtin_specs
    from recprompt.spec import load_spec

    table = Table("name", "task", "output", "variants", "source", show_lines=False)
    for name, path in sorted(builtin_specs().items()):
        if "." not in name:
            continue
        spec = load_spec(path)
        ids = " ".join(v.id + ("*" if v.held_out else "") for v in spec.variants) or "-"
        table.add_row(name, spec.task, spec.output.type, ids, (spec.source or "")[:60])
    out.print(table)


@app.command()
@guarded
def render(
    spec: SpecArg,
    input: InputOpt,
    variant: VariantOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Render the exact prompt, constraint and token limit for one input (no model call)."""
    import recprompt

    program = recprompt.load(spec)
    rendered = program.render(variant=variant, **parse_input(input))
    if as_json:
        out.print_json(json.dumps(rendered.as_dict()))
        return
    out.print(Text.assemble((program.spec.name, "bold"), f" [{rendered.variant}]"))
    out.print(rendered.text)
    out.print(
        f"constraint: {rendered.constraint.describe()} · max_tokens: {rendered.max_tokens}"
        f" · decode: {rendered.decode}",
        style="dim",
    )


DataOpt = Annotated[
    str, typer.Option("--data", "-d", help="Dataset path, or a name under $RECPROMPT_DATA.")
]
UsersOpt = Annotated[int | None, typer.Option("--users", min=1, help="Users sampled (seeded).")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of every random choice (>= 0).")]
NegativesOpt = Annotated[
    int | None,
    typer.Option("--negatives", min=0, help="Negatives per positive (default: spec)."),
]
HistoryOpt = Annotated[
    int | None, typer.Option("--history", min=0, help="History length (default: spec).")
]
HoldoutOpt = Annotated[
    str,
    typer.Option(
        "--holdout",
        help="Leave-one-out holds out each user's 'last' event (needs time) or a seeded "
        "'random' one.",
    ),
]
FileOrderOpt = Annotated[
    bool,
    typer.Option(
        "--file-order-is-time", help="State that rows are in time order (data without time)."
    ),
]
ItemNounOpt = Annotated[
    str | None,
    typer.Option("--item-noun", help="What prompts call an item (default: the dataset's)."),
]
RetrieverOpt = Annotated[
    str | None,
    typer.Option(
        "--retriever",
        help="Retrieve, then rerank: candidates = this retriever's top-N "
        "(bpr, itemknn, popularity; fitted on training data only).",
    ),
]
ShortlistOpt = Annotated[
    int | None,
    typer.Option("--shortlist", help="N, the retriever's shortlist size (default: 20)."),
]


def load_data(data: str, spec: Any, item_noun: str | None, holdout: str) -> Any:
    """The dataset of dry-run and eval, its noun set, its warnings printed before any call."""
    from recprompt.data import load_dataset
    from recprompt.eval.cases import spec_data_warnings

    if holdout not in ("last", "random"):
        raise InputError(f"--holdout must be 'last' or 'random', got {holdout!r}")
    if item_noun is not None and (not item_noun.strip() or len(item_noun.splitlines()) > 1):
        raise InputError(  # '' was ignored and '   ' printed as 'The    s I watched'
            f"--item-noun must be a word, got {item_noun!r}",
            hint="e.g. --item-noun book (prompts make the plural)",
        )
    data_path(data)  # an empty --data is refused, not read as the current folder
    dataset = load_dataset(data)
    if item_noun:
        dataset.item_noun = item_noun.strip()  # ' book ' made prompts say 'these  book s'
    for warning in spec_data_warnings(spec, dataset):
        err.print("warning: " + warning, markup=False, highlight=False)
    return dataset


@app.command("dry-run")
@guarded
def dry_run_command(
    spec: SpecArg,
    data: DataOpt,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=0, help="At most N cases.")
    ] = None,
    variant: VariantOpt = None,
    users: UsersOpt = None,
    seed: SeedOpt = 0,
    negatives: NegativesOpt = None,
    history: HistoryOpt = None,
    holdout: HoldoutOpt = "last",
    file_order_is_time: FileOrderOpt = False,
    item_noun: ItemNounOpt = None,
    show: Annotated[int, typer.Option("--show", min=0, help="Print the first N prompts.")] = 1,
    prompts_out: Annotated[
        str | None,
        typer.Option("--out", metavar="PATH", help="Write every rendered prompt as JSON lines."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="A hosted litellm model: adds a cost estimate."),
    ] = None,
    retriever: RetrieverOpt = None,
    shortlist: ShortlistOpt = None,
) -> None:
    """Render prompts for real cases of a dataset: tokens, constraint, calls. No model call.

    ``--out`` is written whole or not at all: a failure leaves an existing file untouched.
    """
    import contextlib

    import recprompt
    from recprompt._files import atomic_writer, check_output_path
    from recprompt.eval.dryrun import count_validation, dry_run
    from recprompt.eval.evaluate import check_plan

    sink_path = None
    if prompts_out is not None:
        sink_path = check_output_path(
            out_path(prompts_out), inputs=input_paths(spec, data), apart_from=data_reads(data)
        )
    retrieval = _retrieval_options(retriever, shortlist, negatives=negatives)
    program = recprompt.load(spec)
    check_plan(program.spec, None, retriever, retrieval.get("shortlist"))
    dataset = load_data(data, program.spec, item_noun, holdout)
    protocol = make_protocol(
        program.spec,
        dataset,
        n_users=users,
        seed=seed,
        n_negatives=negatives,
        history_length=history,
        holdout=holdout,
        file_order_is_time=file_order_is_time,
        **retrieval,
    )
    result, rendered = dry_run(program, dataset, protocol, limit=limit, variant=variant)
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(atomic_writer(sink_path)) if sink_path else None
        for n, (case, prompt) in enumerate(rendered):
            if n < show:
                for name, row in result.stages.items() if n == 0 else ():
                    out.rule(Text(f"stage {name} ({row['spec']}, per {row['per']}) · first prompt"))
                    out.print(row["first"].text)
                out.rule(Text(f"case {case.id} · label {case.label!r}"))
                out.print(prompt.text)
            if sink:
                sink.write(json.dumps({"id": case.id, "label": case.label, **prompt.as_dict()}))
                sink.write("\n")
    count_validation(result, program, dataset, protocol)  # calibration, fusion tuning
    for message in result.warnings(limit):
        warn(message)
    table = Table("dry-run", "value", show_header=False)
    for key, value in result.summary().items():
        if key == "stages":
            for name, row in value.items():
                calls = f"{row['model_calls']} calls, {row['prompt_tokens_total']} prompt tokens"
                table.add_row(f"stage {name} ({row['spec']})", calls)
        elif key != "protocol":
            table.add_row(key, str(value))
    table.add_row("protocol", json.dumps(result.summary()["protocol"]))
    if model and model != "local" and not model.endswith(".gguf"):
        from recprompt.backends.cost import estimate

        summary = result.summary()
        cost = estimate(  # the call range's upper end: a budget must hold in the worst case
            model,
            int(summary.get("model_calls_max", summary["model_calls"])),
            summary["prompt_tokens_total"],
            summary["max_completion_tokens"],
        )
        for key, value in cost.items():
            table.add_row(key, str(value))
    out.print(table)


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="'local' (Gemma 3 270M), a .gguf path, or a litellm model string."
    ),
]
ApiBaseOpt = Annotated[
    str | None, typer.Option("--api-base", help="Base URL of an OpenAI-compatible server.")
]
CacheOpt = Annotated[
    bool, typer.Option("--cache/--no-cache", help="Answer repeated calls from the disk cache.")
]


ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="Key of a hosted provider (default: its usual environment variable, e.g. "
        "OPENAI_API_KEY). Never written to logs, reports or the cache.",
        show_default=False,
    ),
]
ServerKindOpt = Annotated[
    str,
    typer.Option(
        "--server-kind",
        help="auto, llama_cpp, vllm, sglang, ollama, openai or generic: how to send "
        "constraints and read scores ('auto' asks the server).",
    ),
]
MaxCostOpt = Annotated[
    float | None,
    typer.Option("--max-cost", help="Stop before spending more than this many US dollars."),
]
ChatFormatOpt = Annotated[
    str | None,
    typer.Option("--chat-format", help="Local model: llama.cpp chat format for chat specs."),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", "-j", help="Calls in flight at once (AIMD on 429s).")
]
RpmOpt = Annotated[int | None, typer.Option("--rpm", help="Cap on requests per minute.")]
TpmOpt = Annotated[int | None, typer.Option("--tpm", help="Cap on tokens per minute.")]


def build_backend(
    model: str,
    api_base: str | None,
    cache: bool,
    *,
    api_key: str | None = None,
    server_kind: str = "auto",
    max_cost: float | None = None,
    chat_format: str | None = None,
    concurrency: int = 1,
    rpm: int | None = None,
    tpm: int | None = None,
) -> Any:
    from recprompt.backends import get_backend
    from recprompt.backends.server_kinds import parse_kind
    from recprompt.backends.throttle import Throttle, attach_throttle
    from recprompt.eval.executor import check_concurrency

    if model == "none":  # else litellm takes it for a model name: "is the server running?"
        raise InputError(
            "--model none means no model: only eval takes it (it then reports the baselines)",
            hint="pass --model local, a .gguf path or a litellm model string",
        )
    parse_kind(server_kind)  # an unknown kind stops here, before any call
    check_concurrency(concurrency)
    Throttle(concurrency, rpm=rpm, tpm=tpm)  # validates the caps before anything is built
    options: dict[str, Any] = {"api_base": api_base} if api_base else {}
    local = model == "local" or model.startswith("local:") or model.endswith(".gguf")
    given = {"--api-base": api_base, "--api-key": api_key, "--chat-format": chat_format}
    given["--server-kind"] = None if server_kind == "auto" else server_kind
    unused = ("--api-base", "--api-key", "--server-kind") if local else ("--chat-format",)
    for flag in unused:  # accepted, they would change nothing
        if given[flag]:
            raise InputError(
                f"{flag} does nothing with --model {model}",
                hint="--api-base, --api-key and --server-kind are for servers, --chat-format "
                "for a local model",
            )
    if local:
        options = {"chat_format": chat_format} if chat_format else {}
    else:
        options.update(server=server_kind, **({"api_key": api_key} if api_key else {}))
    backend = get_backend(model, **options)
    if concurrency > 1 or rpm is not None or tpm is not None:
        attach_throttle(backend, concurrency, rpm=rpm, tpm=tpm)  # the server backend itself
    if cache:
        from recprompt.backends.cache import CachedBackend

        backend = CachedBackend(backend)
    if max_cost is not None:
        from recprompt.backends.cost import CostGuard

        backend = CostGuard(backend, model, max_cost)
    return backend


def load_program(
    spec: str,
    variant: str | None,
    model: str,
    api_base: str | None,
    cache: bool,
    temperature: float,
    seed: int,
    **options: Any,
) -> Any:
    """The program of ``run`` and ``eval``: a spec or tuned program on the chosen backend;
    ``server`` holds api_key, server_kind, max_cost and chat_format."""
    import recprompt
    from recprompt.compile.program import check_temperature

    check_temperature(temperature)  # before a model is loaded or a server contacted
    backend = build_backend(model, api_base, cache, **options)
    return recprompt.load(
        spec, variant=variant, backend=backend, temperature=temperature, seed=seed
    )


@app.command()
@guarded
def run(
    spec: SpecArg,
    input: InputOpt,
    variant: VariantOpt = None,
    model: ModelOpt = "local",
    api_base: ApiBaseOpt = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.0,
    seed: SeedOpt = 0,
    cache: CacheOpt = True,
    api_key: ApiKeyOpt = None,
    server_kind: ServerKindOpt = "auto",
    max_cost: MaxCostOpt = None,
    chat_format: ChatFormatOpt = None,
    concurrency: ConcurrencyOpt = 1,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
) -> None:
    """Run a program on one input and print the typed prediction as JSON.

    ``--input @cases.jsonl`` runs every line (a JSON object each) with ``--concurrency``
    calls in flight and prints one JSON prediction per line, in input order."""
    batch = parse_batch(input) if input.startswith("@") and input.endswith(".jsonl") else None
    if batch is not None:
        check_batch(spec, variant, batch, Path(input[1:]))
    program = load_program(
        spec, variant, model, api_base, cache, temperature, seed,
        api_key=api_key, server_kind=server_kind, max_cost=max_cost, chat_format=chat_format,
        concurrency=concurrency, rpm=rpm, tpm=tpm,
    )  # fmt: skip
    if batch is None:
        prediction = program(**parse_input(input))
        out.print_json(prediction.model_dump_json())
        return
    for prediction in program.batch([case for _, case in batch], concurrency=concurrency):
        sys.stdout.write(prediction.model_dump_json() + "\n")
    sys.stdout.flush()


def check_batch(
    spec: str, variant: str | None, batch: list[tuple[int, dict[str, Any]]], path: Path
) -> None:
    """Check every line's inputs against the spec before a model is loaded: a bad line would
    otherwise stop the batch after the calls of the lines before it, and lose their answers.
    (Specs with stages get some inputs from the stages, so their lines are checked per call.)
    """
    import recprompt
    from recprompt.compile.inputs import normalize_inputs

    checked = recprompt.load(spec, variant=variant)
    if checked.spec.stages:
        return
    for number, case in batch:
        try:
            normalize_inputs(checked.spec, case)
        except InputError as exc:
            raise InputError(f"{path}:{number}: {exc.message}", hint=exc.hint) from None


def parse_batch(text: str) -> list[tuple[int, dict[str, Any]]]:
    """``--input @cases.jsonl``: one JSON object per non-empty line, with its line number."""
    from recprompt._files import open_regular

    path = Path(text[1:])
    try:
        with open_regular(path) as handle:  # a named pipe would wait for a writer forever
            lines = handle.read().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InputError(
            f"cannot read {path}: {reason}", hint="pass --input @cases.jsonl"
        ) from None
    cases = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = parse_input(line)
        except InputError as exc:
            raise InputError(f"{path}:{number}: {exc.message}", hint=exc.hint) from None
        cases.append((number, value))
    if not cases:
        raise InputError(f"{path} has no cases", hint="write one JSON object per line")
    return cases


@app.command("eval")
@guarded
def eval_command(
    spec: SpecArg,
    data: DataOpt,
    out_given: Annotated[
        str, typer.Option("--out", "-o", metavar="PATH", help="Results folder (resumable).")
    ],
    users: UsersOpt = None,
    seed: SeedOpt = 0,
    negatives: NegativesOpt = None,
    history: HistoryOpt = None,
    sampler: Annotated[
        str,
        typer.Option(callback=one_of(SAMPLERS), help="Negative sampler: uniform or popularity."),
    ] = "uniform",
    holdout: HoldoutOpt = "last",
    file_order_is_time: FileOrderOpt = False,
    item_noun: ItemNounOpt = None,
    variant: VariantOpt = None,
    model: ModelOpt = "local",
    api_base: ApiBaseOpt = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.0,
    baselines: Annotated[
        str | None,
        typer.Option(help="Comma-separated: random,popularity,itemknn,bpr or *_mean; 'none'."),
    ] = None,
    max_calls: Annotated[
        int | None,
        typer.Option(min=0, help="Most model calls; checked before every call, not per case."),
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(min=0, help="Stop after N tokens.")] = None,
    max_seconds: Annotated[float | None, typer.Option(min=0, help="Stop after N seconds.")] = None,
    baselines_only: Annotated[
        bool,
        typer.Option(
            "--baselines-only",
            help="Report only the baselines on the same cases; no model is loaded or called "
            "(also: --model none).",
        ),
    ] = False,
    cache: CacheOpt = True,
    api_key: ApiKeyOpt = None,
    server_kind: ServerKindOpt = "auto",
    max_cost: MaxCostOpt = None,
    chat_format: ChatFormatOpt = None,
    concurrency: ConcurrencyOpt = 1,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (this process) or ray (Ray actors).")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster (default: start one).")
    ] = None,
    ray_actors: Annotated[
        int | None, typer.Option("--ray-actors", help="Ray actors (shards; default: 2).")
    ] = None,
    retriever: RetrieverOpt = None,
    shortlist: ShortlistOpt = None,
) -> None:
    """Evaluate a program against baselines under a declared protocol; resumes in --out.

    One run at a time per --out: a second run on the same folder stops with an error (the
    folder is locked). A folder holding another run's results is refused, never mixed.
    """
    import recprompt
    from recprompt._files import check_output_path, exclusive_lock
    from recprompt.eval.cases import _is_ranking
    from recprompt.eval.checks import check_candidates
    from recprompt.eval.evaluate import OUTPUT_FILES, check_engine, check_plan, evaluate
    from recprompt.eval.executor import check_concurrency
    from recprompt.eval.runner import Limits

    check_concurrency(concurrency)  # bad numbers stop before any folder is made
    if ray_actors is not None and engine != "ray":  # else accepted and unused
        raise InputError("--ray-actors needs --engine ray", hint="add --engine ray")
    ray_actors = 2 if ray_actors is None else ray_actors
    check_engine(engine, ray_address, ray_actors)
    if engine == "ray":  # fail fast, before anything is written: Ray missing or unreachable
        from recprompt.eval.ray_engine import connect

        connect(ray_address)
    out_dir = out_path(out_given)
    check_output_path(
        out_dir,
        folder=True,
        inputs=input_paths(spec, data),
        writes=OUTPUT_FILES,
        apart_from=data_reads(data),
    )
    # the spec, variant, baselines and retrieval are checked before any folder is made
    checked = recprompt.load(spec, variant=variant, temperature=temperature, seed=seed)
    if baselines_only or model == "none":
        check_no_model_flags(
            {
                "--model": baselines_only and model not in ("local", "none"),
                "--api-base": api_base is not None,
                "--api-key": api_key is not None,
                "--server-kind": server_kind != "auto",
                "--chat-format": chat_format is not None,
                "--temperature": temperature != 0.0,
                "--max-cost": max_cost is not None,
                "--max-calls": max_calls is not None,
                "--max-tokens": max_tokens is not None,
                "--max-seconds": max_seconds is not None,
                "--no-cache": not cache,
                "--concurrency": concurrency != 1,
                "--rpm": rpm is not None,
                "--tpm": tpm is not None,
                "--engine": engine != "local",
                "--variant": variant is not None,
            }
        )
    chosen = None if baselines is None else parse_baselines(baselines)
    retrieval = _retrieval_options(retriever, shortlist, negatives=negatives, sampler=sampler)
    check_plan(checked.spec, chosen, retriever, retrieval.get("shortlist"))
    check_candidate_flags(checked.spec, negatives, sampler, history)
    with exclusive_lock(out_dir):  # before loading a model: a second run stops at once
        dataset = load_data(data, checked.spec, item_noun, holdout)
        protocol = make_protocol(
            checked.spec,
            dataset,
            n_users=users,
            seed=seed,
            n_negatives=negatives,
            history_length=history,
            sampler=sampler,
            holdout=holdout,
            file_order_is_time=file_order_is_time,
            **retrieval,
        )
        check_candidates(checked.spec, protocol, ranking=_is_ranking(checked.spec))
        baselines_only = baselines_only or model == "none"
        if baselines_only:
            program = checked
        else:  # the model loads once the data and candidates are known to fit the spec
            program = load_program(
                spec, variant, model, api_base, cache, temperature, seed,
                api_key=api_key, server_kind=server_kind, max_cost=max_cost,
                chat_format=chat_format, concurrency=concurrency, rpm=rpm, tpm=tpm,
            )  # fmt: skip
        report = evaluate(
            program,
            dataset,
            protocol,
            out_dir,
            baselines=chosen,
            limits=Limits(max_calls, max_tokens, max_seconds),
            baselines_only=baselines_only,
            on_warning=warn,
            concurrency=concurrency,
            engine=engine,
            ray_address=ray_address,
            ray_actors=ray_actors,
        )
    out.print((out_dir / "report.md").read_text(encoding="utf-8"))
    out.print(f"report: {out_dir / 'report.html'} · {report['cases']} cases", style="dim")


@app.command("compare")
@guarded
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Two or more `eval --out` folders.")],
    out_given: Annotated[
        str,
        typer.Option(
            "--out", "-o", metavar="PATH", help="The HTML page (statistics go beside it as .json)."
        ),
    ] = "compare.html",
    seed: SeedOpt = 0,
) -> None:
    """Compare runs over the same cases: paired differences, disagreeing cases first."""
    from recprompt._files import check_output_path
    from recprompt.eval.compare import compare_runs

    out_file = out_path(out_given)
    check_output_path(
        out_file, inputs=list(runs), siblings=[out_file.with_suffix(".json")], apart_from=runs
    )
    stats = compare_runs(runs, out_file, seed=seed)
    for name, rows in stats["paired"].items():
        for metric, d in rows.items():
            out.print(
                f"{name} − {stats['reference']} {metric}: {d['difference']:+.4f} "
                f"[{d['low']:+.3f}, {d['high']:+.3f}] p={d['p_value']:.4f}"
            )
    out.print(f"{stats['cases']} cases · {stats['agreement']} · {out_file}", style="dim")


def _retrieval_options(
    retriever: str | None,
    shortlist: int | None,
    *,
    negatives: int | None = None,
    sampler: str = "uniform",
) -> dict[str, Any]:
    """Protocol fields of retrieve-then-rerank; the retriever's name is checked first, and
    --negatives or --sampler beside it are refused (the shortlist is the candidates)."""
    drawn = {"--negatives": negatives is not None, "--sampler": sampler != "uniform"}
    for flag, given in drawn.items():
        if retriever is not None and given:  # the shortlist is the candidates: none are drawn
            raise InputError(
                f"{flag} does nothing with --retriever: the candidates are its shortlist",
                hint="drop it; --shortlist sets how many candidates the retriever gives",
            )
    if retriever is None:
        if shortlist is not None:
            raise InputError(
                "--shortlist needs --retriever",
                hint="add e.g. --retriever bpr, or drop --shortlist",
            )
        return {}
    from recprompt.data.retrieval import check_retriever

    if shortlist is not None and shortlist < 1:  # else "the shortlist has -5 candidates"
        raise InputError(
            f"--shortlist must be at least 1, got {shortlist}",
            hint="--shortlist N is how many candidates the retriever gives (default 20)",
        )
    return {
        "retriever": check_retriever(retriever),
        "shortlist": 20 if shortlist is None else shortlist,
    }


@app.command()
@guarded
def schema(
    out_given: Annotated[
        str, typer.Option("--out", metavar="PATH", help="Folder to write into.")
    ] = "schemas",
) -> None:
    """Write the spec format's JSON Schema (for editor validation and autocompletion)."""
    from recprompt._files import check_output_path
    from recprompt.spec.schema import write_schema

    out_dir = check_output_path(out_path(out_given), folder=True)
    try:
        written = write_schema(out_dir)
    except OSError as exc:  # e.g. a folder under /proc, which cannot be made
        raise InputError(
            f"--out {out_dir}: cannot write the schema: {exc.strerror or exc}",
            hint="pass another --out",
        ) from None
    out.print(f"wrote {written}")


@app.command("optimize")
@guarded
def optimize_command(
    spec: SpecArg,
    data: DataOpt,
    budget: Annotated[int, typer.Option("--budget", help="Most model calls to spend (all).")],
    out_given: Annotated[
        str, typer.Option("--out", "-o", metavar="PATH", help="Tuned program (.json).")
    ],
    seed: SeedOpt = 0,
    demo_users: Annotated[int, typer.Option(help="Users whose cases are demos.")] = 30,
    valid_users: Annotated[int, typer.Option(help="Users that score candidates.")] = 20,
    test_users: Annotated[int, typer.Option(help="Held-out users of the report.")] = 20,
    report: Annotated[bool, typer.Option("--report/--no-report", help="vs zero-shot.")] = True,
    model: ModelOpt = "local",
    api_base: ApiBaseOpt = None,
    cache: CacheOpt = True,
    api_key: ApiKeyOpt = None,
    server_kind: ServerKindOpt = "auto",
    max_cost: MaxCostOpt = None,
    concurrency: ConcurrencyOpt = 1,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
) -> None:
    """Tune demonstrations, selector, variant and history length; save PROGRAM.json + report.

    One run at a time per --out: a second run on the same file stops with an error, so the
    tuned program and its report always come from the same run.
    """
    from recprompt._files import check_output_path, exclusive_lock
    from recprompt.data import load_dataset
    from recprompt.optimize import optimize
    from recprompt.optimize.run import check_arguments, check_program_path

    out_file = out_path(out_given)
    base = out_file.with_suffix("")
    # numbers and the file name before a folder is made: a refused run leaves none behind
    check_arguments(budget, demo_users, valid_users, test_users, report, concurrency)
    check_output_path(
        out_file,
        inputs=input_paths(spec, data),
        siblings=[Path(f"{base}.report.json"), Path(f"{base}.report.md")] if report else [],
        apart_from=data_reads(data),
        make_parents=True,
        check_name=check_program_path,
    )
    # data is checked before a model is loaded or a server contacted
    dataset = load_dataset(data)
    lock = exclusive_lock(
        out_file.parent,
        name=f".{out_file.name}.lock",
        target=out_file,
        hint="wait for it to finish (a rerun tunes again; cached calls are free), or pass "
        "another --out file",
    )
    with lock:  # before loading a model: a second run on this --out stops at once
        backend = build_backend(
            model, api_base, cache, api_key=api_key, server_kind=server_kind, max_cost=max_cost,
            concurrency=concurrency, rpm=rpm, tpm=tpm,
        )  # fmt: skip
        outcome = optimize(
            spec,
            dataset,
            backend,
            budget=budget,
            out=out_file,
            seed=seed,
            demo_users=demo_users,
            valid_users=valid_users,
            test_users=test_users,
            report=report,
            announce=lambda text: out.print(text),
            concurrency=concurrency,
        )
        if report:
            md = outcome.path.with_suffix("").as_posix() + ".report.md"
            out.print(Path(md).read_text(encoding="utf-8"))
        out.print(f"tuned program: {outcome.path}", style="dim")


def main() -> None:  # pragma: no cover - console script entry
    try:
        app()
    except RecpromptError as exc:
        print_error(exc)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
