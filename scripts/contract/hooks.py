"""Schemathesis hooks of the contract test (scripts/contract/run.sh).

An order names items of the item service, and the order service's document
cannot link to another service's operations: a generated order names items
that do not exist, is refused with 422 before the saga runs, and the links
placeOrder -> getOrder / cancelOrder never start from a real order. So run.sh
creates a few items in the item service and passes their ids in
CONTRACT_ITEM_IDS, and every valid (positive) placeOrder body generated here
names those items instead. Only `item_id` changes, and only in valid bodies:
quantities, line counts and the Idempotency-Key stay as generated, and bodies
generated to be invalid are sent as they are, so the refusals are still tested.
"""

import os

import schemathesis
from schemathesis.core.parameters import ParameterLocation

SEEDED_ITEM_IDS = [item_id for item_id in os.environ.get("CONTRACT_ITEM_IDS", "").split(",") if item_id]


@schemathesis.hook("map_case").apply_to(operation_id="placeOrder")
def order_seeded_items(context, case):
    """Generated bodies (coverage, fuzzing, stateful phases)."""
    return with_seeded_items(case)


@schemathesis.hook("before_add_examples").apply_to(operation_id="placeOrder")
def example_order_seeded_items(context, examples):
    """The document's own example bodies (examples phase), which `map_case`
    does not see."""
    for case in examples:
        with_seeded_items(case)


def with_seeded_items(case):
    """Each distinct generated item id becomes a distinct seeded one, so a
    body that repeats an item (a 422 the service must give) still repeats it."""
    lines = case.body.get("lines") if isinstance(case.body, dict) else None
    if (
        not SEEDED_ITEM_IDS
        or case.meta is None
        or case.meta.is_negative_at(ParameterLocation.BODY)
        or not isinstance(lines, list)
    ):
        return case
    seeded = {}
    mapped = []
    for line in lines:
        if isinstance(line, dict) and isinstance(line.get("item_id"), str):
            generated = line["item_id"]
            if generated not in seeded:
                seeded[generated] = SEEDED_ITEM_IDS[len(seeded) % len(SEEDED_ITEM_IDS)]
            line = {**line, "item_id": seeded[generated]}
        mapped.append(line)
    case.body = {**case.body, "lines": mapped}
    return case
