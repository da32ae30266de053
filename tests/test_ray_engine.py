"""``--engine ray``: a local Ray cluster (2 CPUs), two actors, one killed mid-run."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter

import pytest
from latency_server import LatencyServer
from test_scale import SAME, _evaluate, _program, _values

from recprompt.eval.store import ResultStore, read_lines

if not os.environ.get("CI"):  # CI installs the [ray] extra: there a missing ray fails
    pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    import ray

    from recprompt.errors import BackendError
    from recprompt.eval.ray_engine import connect

    try:
        cluster = connect(None)
    except BackendError as exc:  # Ray's raylet gives its agents 15 s: an overloaded machine
        pytest.skip(f"a local Ray cluster did not start here: {exc}")
    yield cluster
    ray.shutdown()


def test_actor_killed_mid_run_is_replaced_and_results_match(tmp_path, data_root, cluster):
    from recprompt.data import load_dataset
    from recprompt.eval.cases import default_protocol
    from recprompt.eval.ray_engine import run_on_ray
    from recprompt.eval.runner import Limits, make_cases, run_id

    killed: list[int] = []
    with LatencyServer(delay=0.05) as server:
        local, _ = _evaluate(server.url, tmp_path / "local", data_root, 1)
        program = _program(server.url)
        dataset = load_dataset(data_root / "ml-100k")
        protocol = default_protocol(program.spec, dataset.name, n_users=5, seed=0)
        cases = make_cases(program, dataset, protocol)
        # the driver's store is the local engine's, owned by the same run as the local one
        # (same settings and content fingerprints, which evaluate checks)
        local_run = json.loads((tmp_path / "local" / "run.json").read_text())
        store = ResultStore(tmp_path / "ray" / "results.jsonl", run=run_id(local_run))

        def kill_one(done: int, actors: list) -> None:
            if done >= 4 and not killed:
                killed.append(cluster.get(actors[0].pid.remote()))
                cluster.kill(actors[0], no_restart=True)

        run_on_ray(program, cases, store, limits=Limits(), progress=False, on_result=kill_one)
        assert killed, "no actor was killed"
        records, torn = read_lines(tmp_path / "ray" / "results.jsonl")
        counts = Counter(r["id"] for r in records)
        assert torn == 0 and len(counts) == len(cases) and set(counts.values()) == {1}
        # with the local run's run.json it resumes to a full report
        shutil.copy(tmp_path / "local" / "run.json", tmp_path / "ray" / "run.json")
        resumed, _ = _evaluate(server.url, tmp_path / "ray", data_root, 1)
        # and the whole path through evaluate(engine="ray") gives the same report
        direct, _ = _evaluate(server.url, tmp_path / "direct", data_root, 2, engine="ray")
    assert _values(tmp_path / "ray") == _values(tmp_path / "local") == _values(tmp_path / "direct")
    for key in SAME:
        assert resumed[key] == local[key] == direct[key], key
    assert resumed["usage"]["this_invocation"]["calls"] == 0  # nothing was redone


def test_a_program_that_has_rendered_still_pickles_for_the_actors():
    """Rendering caches each variant's compiled Jinja template, which does not pickle; Ray
    ships the program to its actors after the driver may have rendered (calibration, a
    serial run before), so the compiled template must stay behind and be rebuilt there."""
    from ray import cloudpickle  # what Ray ships actor arguments with

    import recprompt
    from recprompt.eval.ray_engine import _portable

    program = recprompt.load("rank.letters")
    candidates = [{"title": f"Movie {i}", "item_id": str(i)} for i in range(3)]
    before = program.render(history=[{"title": "Heat"}], candidates=candidates).prompt
    copy = cloudpickle.loads(cloudpickle.dumps(_portable(program)))
    after = copy.render(history=[{"title": "Heat"}], candidates=candidates).prompt
    assert after == before and "Movie 2" in after
