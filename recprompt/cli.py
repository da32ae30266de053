"""The ``recprompt`` command line: validate, list, render, dry-run, run, eval, optimize.

Every user mistake surfaces as a :class:`RecpromptError`; the CLI prints its message (with
file:line:column for specs) and exits with status 2, never with a traceback.
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

from recprompt.errors import InputError, RecpromptError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Declarative prompt programs for recommendation with LLMs.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def guarded(command: F) -> F:
    """Turn RecpromptError into a clear message and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RecpromptError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def parse_input(text: str) -> dict[str, Any]:
    """``--input`` takes a JSON object, or @path to a JSON file."""
    try:
        raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
        value = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"--input is not a JSON object: {exc}",
            hint='pass e.g. --input \'{"user_id": "12", "item_id": "55"}\' or --input @file.json',
        ) from None
    if not isinstance(value, dict):
        raise InputError("--input must be a JSON object of input names to values")
    return value


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
        path = Path(given)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
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
            err.print(f"[red]✗[/] {exc}", highlight=False)
            continue
        variants = len(spec.all_variants())
        out.print(f"[green]✓[/] {file}  {spec.name} ({variants} variant(s))", highlight=False)
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
    out.print(f"[bold]{program.spec.name}[/] [{rendered.variant}]", highlight=False)
    out.print(rendered.text, markup=False, highlight=False)
    out.print(
        f"[dim]constraint: {rendered.constraint.describe()} · max_tokens: {rendered.max_tokens}"
        f" · decode: {rendered.decode}[/]",
        highlight=False,
    )


DataOpt = Annotated[
    str, typer.Option("--data", "-d", help="Dataset path, or a name under $RECPROMPT_DATA.")
]
UsersOpt = Annotated[int | None, typer.Option("--users", help="Users sampled (seeded).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random choice.")]
NegativesOpt = Annotated[
    int | None, typer.Option("--negatives", help="Negatives per positive (default: spec).")
]
HistoryOpt = Annotated[
    int | None, typer.Option("--history", help="History length (default: spec).")
]


@app.command("dry-run")
@guarded
def dry_run_command(
    spec: SpecArg,
    data: DataOpt,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="At most N cases.")] = None,
    variant: VariantOpt = None,
    users: UsersOpt = None,
    seed: SeedOpt = 0,
    negatives: NegativesOpt = None,
    history: HistoryOpt = None,
    show: Annotated[int, typer.Option("--show", help="Print the first N prompts.")] = 1,
    prompts_out: Annotated[
        Path | None, typer.Option("--out", help="Write every rendered prompt as JSON lines.")
    ] = None,
) -> None:
    """Render prompts for real cases of a dataset: tokens, constraint, calls. No model call."""
    import recprompt
    from recprompt.data import load_dataset
    from recprompt.eval.cases import default_protocol
    from recprompt.eval.dryrun import dry_run

    program = recprompt.load(spec)
    dataset = load_dataset(data)
    protocol = default_protocol(
        program.spec,
        dataset.name,
        n_users=users,
        seed=seed,
        n_negatives=negatives,
        history_length=history,
    )
    result, rendered = dry_run(program, dataset, protocol, limit=limit, variant=variant)
    sink = prompts_out.open("w", encoding="utf-8") if prompts_out else None
    try:
        for n, (case, prompt) in enumerate(rendered):
            if n < show:
                for name, row in result.stages.items() if n == 0 else ():
                    out.rule(f"stage {name} ({row['spec']}, per {row['per']}) · first prompt")
                    out.print(row["first"].text, markup=False, highlight=False)
                out.rule(f"case {case.id} · label {case.label!r}")
                out.print(prompt.text, markup=False, highlight=False)
            if sink:
                sink.write(json.dumps({"id": case.id, "label": case.label, **prompt.as_dict()}))
                sink.write("\n")
    finally:
        if sink:
            sink.close()
    table = Table("dry-run", "value", show_header=False)
    for key, value in result.summary().items():
        if key == "stages":
            for name, row in value.items():
                calls = f"{row['model_calls']} calls, {row['prompt_tokens_total']} prompt tokens"
                table.add_row(f"stage {name} ({row['spec']})", calls)
        elif key != "protocol":
            table.add_row(key, str(value))
    table.add_row("protocol", json.dumps(result.summary()["protocol"]))
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


def build_backend(model: str, api_base: str | None, cache: bool) -> Any:
    from recprompt.backends import get_backend

    backend = get_backend(model, **({"api_base": api_base} if api_base else {}))
    if cache:
        from recprompt.backends.cache import CachedBackend

        backend = CachedBackend(backend)
    return backend


def load_program(
    spec: str,
    variant: str | None,
    model: str,
    api_base: str | None,
    cache: bool,
    temperature: float,
    seed: int,
) -> Any:
    """The program of ``run`` and ``eval``: a spec or tuned program on the chosen backend."""
    import recprompt

    backend = build_backend(model, api_base, cache)
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
) -> None:
    """Run a program on one input and print the typed prediction as JSON."""

    program = load_program(spec, variant, model, api_base, cache, temperature, seed)
    prediction = program(**parse_input(input))
    out.print_json(prediction.model_dump_json())


@app.command("eval")
@guarded
def eval_command(
    spec: SpecArg,
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Results folder (resumable).")],
    users: UsersOpt = None,
    seed: SeedOpt = 0,
    negatives: NegativesOpt = None,
    history: HistoryOpt = None,
    sampler: Annotated[
        str, typer.Option(help="Negative sampler: uniform or popularity.")
    ] = "uniform",
    variant: VariantOpt = None,
    model: ModelOpt = "local",
    api_base: ApiBaseOpt = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.0,
    baselines: Annotated[
        str | None,
        typer.Option(help="Comma-separated: random,popularity,itemknn,bpr or *_mean; 'none'."),
    ] = None,
    max_calls: Annotated[int | None, typer.Option(help="Stop after N model calls.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Stop after N tokens.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after N seconds.")] = None,
    cache: CacheOpt = True,
) -> None:
    """Evaluate a program against baselines under a declared protocol; resumes in --out."""
    from recprompt.data import load_dataset
    from recprompt.eval.cases import default_protocol
    from recprompt.eval.evaluate import evaluate
    from recprompt.eval.runner import Limits

    program = load_program(spec, variant, model, api_base, cache, temperature, seed)
    dataset = load_dataset(data)
    protocol = default_protocol(
        program.spec,
        dataset.name,
        n_users=users,
        seed=seed,
        n_negatives=negatives,
        history_length=history,
        sampler=sampler,
    )
    chosen = (
        None if baselines is None else [b for b in baselines.split(",") if b not in ("", "none")]
    )
    report = evaluate(
        program,
        dataset,
        protocol,
        out_dir,
        baselines=chosen,
        limits=Limits(max_calls, max_tokens, max_seconds),
    )
    out.print((out_dir / "report.md").read_text(encoding="utf-8"), markup=False, highlight=False)
    out.print(f"[dim]report: {out_dir / 'report.json'} · {report['cases']} cases[/]")


@app.command()
@guarded
def schema(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("schemas"),
) -> None:
    """Write the spec format's JSON Schema (for editor validation and autocompletion)."""
    from recprompt.spec.schema import write_schema

    out.print(f"wrote {write_schema(out_dir)}")


@app.command("optimize")
@guarded
def optimize_command(
    spec: SpecArg,
    data: DataOpt,
    budget: Annotated[int, typer.Option("--budget", help="Most model calls to spend (all).")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Tuned program (.json).")],
    seed: SeedOpt = 0,
    demo_users: Annotated[int, typer.Option(help="Users whose cases are demos.")] = 30,
    valid_users: Annotated[int, typer.Option(help="Users that score candidates.")] = 20,
    test_users: Annotated[int, typer.Option(help="Held-out users of the report.")] = 20,
    report: Annotated[bool, typer.Option("--report/--no-report", help="vs zero-shot.")] = True,
    model: ModelOpt = "local",
    api_base: ApiBaseOpt = None,
    cache: CacheOpt = True,
) -> None:
    """Tune demonstrations, selector, variant and history length; save PROGRAM.json + report."""
    from recprompt.data import load_dataset
    from recprompt.optimize import optimize

    outcome = optimize(
        spec,
        load_dataset(data),
        build_backend(model, api_base, cache),
        budget=budget,
        out=out_file,
        seed=seed,
        demo_users=demo_users,
        valid_users=valid_users,
        test_users=test_users,
        report=report,
        announce=lambda text: out.print(text, markup=False, highlight=False),
    )
    if report:
        md = outcome.path.with_suffix("").as_posix() + ".report.md"
        out.print(Path(md).read_text(encoding="utf-8"), markup=False, highlight=False)
    out.print(f"[dim]tuned program: {outcome.path}[/]")


def main() -> None:  # pragma: no cover - console script entry
    try:
        app()
    except RecpromptError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
