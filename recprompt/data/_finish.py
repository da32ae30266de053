"""The last step of every loader: one row per (user, item), honest counts, warnings.

Loaders read rows as they are; ``finish`` then applies the stated rules every format
shares, so that no loader can forget one:

* repeated (user, item) rows keep the *last* event in time order (ties: file order), and
  ``stats["duplicates_removed"]`` counts every row dropped, by any rule of the loader;
* ``time`` says where the order of events comes from (see ``Dataset.time``);
* a warning is recorded when some or all items have no title (prompts then show bare
  ids) or when the data has no time field; a timestamp column holding one value for every
  row orders nothing, so it counts as no time field (else leave-one-out would silently
  follow file order).
"""

from __future__ import annotations

from typing import Any

from recprompt.data.dataset import Dataset, TimeSource

__all__ = ["finish"]


def finish(
    ds: Dataset,
    *,
    rows_read: int,
    item_noun: str = "item",
    time: TimeSource = "timestamp",
    **stats: Any,
) -> Dataset:
    """Deduplicate ``ds`` (keep the last), set its noun and time source, record stats."""
    constant = time == "timestamp" and len(ds) > 1 and bool((ds.timestamp == ds.timestamp[0]).all())
    if constant:  # a column with one value orders nothing: the rows would be taken in file order
        time = "none"
    ds.item_noun, ds.time = item_noun, time
    deduped, repeats = ds.drop_repeats()
    deduped.item_noun, deduped.time = item_noun, time
    deduped.stats.update(stats)
    deduped.stats.update(
        rows_read=rows_read,
        dedupe_rule="one row per (user, item): the last in time order (ties: file order)",
        repeated_pairs_removed=repeats,
        duplicates_removed=rows_read - len(deduped),
        time=time,
    )
    items = deduped.item_ids() if len(deduped) else []
    untitled = sum(not deduped.item_title(i) for i in items)
    if items and untitled == len(items):
        deduped.warn(
            "items have no titles or text: prompts show bare item ids; give a title column "
            "(see README, 'Bring your own dataset')"
        )
    elif untitled:
        deduped.stats["items_without_title"] = untitled
        deduped.warn(
            f"{untitled} of {len(items)} items have no title: prompts show their bare ids "
            "beside the others' titles; check the items file covers every item"
        )
    if constant:
        deduped.warn(
            f"every row has the same timestamp ({int(ds.timestamp[0])}): it orders nothing, so "
            "the data is treated as having no time field; leave-one-out needs --holdout random, "
            "or --file-order-is-time if rows are in time order"
        )
    elif time == "none":
        deduped.warn(
            "the data has no time field: leave-one-out needs --holdout random, or "
            "--file-order-is-time if rows are in time order"
        )
    return deduped
