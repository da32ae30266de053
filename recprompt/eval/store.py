"""An append-only result store that survives crashes: nothing lost, nothing duplicated.

Each finished case is one JSON line carrying a CRC of its payload, written, flushed and
fsync'ed before the next case starts. On reopening, a torn or corrupted line is detected by
its checksum, dropped (so the case is recomputed, never trusted), and the file is rewritten
atomically without it; the dropped lines are first appended to ``NAME.dropped``, so that no
byte a user had is ever destroyed. A later line for an id replaces nothing: the first valid
one wins, so a case can never count twice.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recprompt._files import write_text_atomic
from recprompt.errors import RecpromptError

__all__ = ["ResultStore", "read_lines"]


def _crc(payload: str) -> str:
    return f"{zlib.crc32(payload.encode('utf-8')):08x}"


def _parse(line: str) -> dict[str, Any] | None:
    """The record a line carries, or None if the line is torn or fails its checksum."""
    try:
        envelope = json.loads(line)
        payload = envelope["payload"]
        if envelope.get("crc") != _crc(payload):
            return None
        record = json.loads(payload)
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    return record if isinstance(record, dict) and "id" in record else None


def _scan(raw: str) -> Iterator[tuple[str, dict[str, Any] | None]]:
    for line in raw.splitlines():
        if line.strip():
            yield line, _parse(line)


def read_lines(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Every valid record of a results file in file order, repeats included, and the number of
    torn or corrupt lines; never repairs the file (for checks of what a crash left behind)."""
    path = Path(path)
    if not path.exists():
        return [], 0
    scanned = list(_scan(path.read_bytes().decode("utf-8", errors="replace")))
    return [r for _, r in scanned if r is not None], sum(r is None for _, r in scanned)


class ResultStore:
    """JSON-lines results keyed by case id.

    ``run``: the identity of the run that owns the file (see
    :func:`recprompt.eval.runner.run_id`). Every line written carries it, and a file holding
    a result of any other run (a results.jsonl copied from another folder, or one whose
    run.json was edited) is refused whole, before anything in it is changed.
    """

    def __init__(self, path: str | Path, *, run: str | None = None) -> None:
        self.path = Path(path)
        self.run = run
        self.records: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self._lock = threading.Lock()
        self._load()

    def _check_owner(self, scanned: list[tuple[str, dict[str, Any] | None]]) -> None:
        if self.run is None:
            return
        foreign = [r for _, r in scanned if r is not None and r.get("run") != self.run]
        if foreign:
            folder = self.path.parent
            raise RecpromptError(
                f"{self.path} holds {len(foreign)} result(s) that the run in "
                f"{folder / 'run.json'} did not write (e.g. case {foreign[0]['id']}): they "
                "may come from another run, so none is reused",
                hint=f"to start fresh, pass a new --out folder or delete this one (rm -r {folder})",
            )

    def _load(self) -> None:
        if not self.path.exists():
            return
        good: list[str] = []
        bad: list[str] = []
        raw = self.path.read_bytes().decode("utf-8", errors="replace")
        scanned = list(_scan(raw))
        self._check_owner(scanned)  # before a byte of the file is changed
        for line, record in scanned:
            if record is None or record["id"] in self.records:
                bad.append(line)
                continue
            record.pop("run", None)
            self.records[record["id"]] = record
            good.append(line)
        self.dropped = len(bad)
        if bad:
            with self.dropped_path.open("a", encoding="utf-8") as handle:
                handle.write("".join(b + "\n" for b in bad))
                handle.flush()
                os.fsync(handle.fileno())
        if bad or (raw and not raw.endswith("\n")):
            write_text_atomic(self.path, "".join(g + "\n" for g in good))

    @property
    def dropped_path(self) -> Path:
        """Where lines dropped on load are kept (torn, corrupt or repeated)."""
        return self.path.with_name(self.path.name + ".dropped")

    def __contains__(self, case_id: str) -> bool:
        return case_id in self.records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records.values())

    def append(self, record: dict[str, Any]) -> None:
        """Persist one finished case before returning."""
        stamped = record if self.run is None else {**record, "run": self.run}
        payload = json.dumps(stamped, sort_keys=True, default=str)
        line = json.dumps({"crc": _crc(payload), "payload": payload}) + "\n"
        with self._lock:
            if record["id"] in self.records:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            kept = json.loads(payload)
            kept.pop("run", None)
            self.records[record["id"]] = kept
