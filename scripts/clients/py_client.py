"""The official Python client (`qstash` from PyPI) against `qstash-receiver dev`: publishes
reach the example receivers (axum, actix), which verify them. Run by scripts/clients.sh."""

import contextlib
import io
import os
import time

from qstash import QStash
from qstash.log import LogState

client = QStash(os.environ["QSTASH_TOKEN"], base_url=os.environ["QSTASH_URL"])
AXUM = os.environ["AXUM_URL"]
ACTIX = os.environ["ACTIX_URL"]
checks = 0


def ok(name):
    global checks
    checks += 1
    print(f"ok {checks} - {name}", flush=True)


def until(what, check):
    """Polls `check` until it returns a truthy value (10 s at most: a safety net)."""
    deadline = time.monotonic() + 10
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.025)


def states(**filter):
    # The client prints every log response; keep the test's output readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return [log.state for log in client.log.list(filter=filter).logs]


def delivered(message_id):
    until(f"{message_id} delivered", lambda: LogState.DELIVERED in states(message_id=message_id))


for name, base in [("axum", AXUM), ("actix", ACTIX)]:
    res = client.message.publish_json(
        url=f"{base}/api/webhook", body={"order": 8}, callback=f"{base}/api/callback"
    )
    assert res.message_id.startswith("msg_"), res
    delivered(res.message_id)
    until(
        f"{name} callback",
        lambda: LogState.DELIVERED in states(url=f"{base}/api/callback"),
    )
    ok(f"{name}: publish_json delivered, verified, callback delivered")

    refused = client.message.publish_json(url=f"{base}/api/webhook", body={"order": 0})
    dead = until(
        f"{name} dlq",
        lambda: [m for m in client.dlq.list().messages if m.message_id == refused.message_id],
    )
    assert dead[0].response_status == 489, dead
    ok(f"{name}: 489 goes straight to the DLQ")

client.queue.upsert("py-orders", parallelism=2)
queued = client.message.enqueue_json(queue="py-orders", url=f"{AXUM}/api/webhook", body={"order": 12})
delivered(queued.message_id)
assert client.queue.get("py-orders").parallelism == 2
ok("queue upsert, enqueue_json, get")

batch = client.message.batch_json(
    [
        {"url": f"{AXUM}/api/webhook", "body": {"order": 23}},
        {"url": f"{ACTIX}/api/webhook", "body": {"order": 24}, "queue": "py-orders"},
    ]
)
assert len(batch) == 2, batch
for item in batch:
    delivered(item.message_id)
ok("batch_json")

client.url_group.upsert_endpoints(
    url_group="py-group",
    endpoints=[{"url": f"{AXUM}/api/webhook"}, {"url": f"{ACTIX}/api/webhook"}],
)
fanned = client.message.publish_json(url_group="py-group", body={"order": 32})
assert len(fanned) == 2, fanned
for item in fanned:
    delivered(item.message_id)
ok("URL group fan-out")

later = client.message.publish_json(url=f"{AXUM}/api/webhook", body={"order": 42}, delay="1h")
message = client.message.get(later.message_id)
assert message.not_before >= message.created_at + 3_600_000, message
client.message.cancel(later.message_id)
others = [
    client.message.publish_json(url=f"{AXUM}/api/webhook", body={"order": 43}, delay="1h").message_id
    for _ in range(2)
]
assert client.message.cancel_many(others) == 2
ok("message get, cancel, cancel_many")

schedule_id = client.schedule.create_json(
    destination=f"{AXUM}/api/webhook", cron="0 0 1 1 *", body={"order": 52}
)
assert client.schedule.get(schedule_id).cron == "0 0 1 1 *"
client.schedule.pause(schedule_id)
assert client.schedule.get(schedule_id).paused
client.schedule.delete(schedule_id)
ok("schedule create_json, get, pause, delete")

dead = client.message.publish_json(url=f"{AXUM}/api/webhook", body={"order": 0}, label="py-dead")
until(
    "labelled dlq",
    lambda: [m.message_id for m in client.dlq.list(filter={"label": "py-dead"}).messages]
    == [dead.message_id],
)
assert client.dlq.list(filter={"label": "py-nobody"}).messages == []
assert LogState.CREATED in states(label="py-dead")
ok("DLQ list and logs take filters")

flowed = [
    client.message.publish_json(
        url=f"{AXUM}/api/webhook",
        body={"order": order},
        flow_control={"key": "py-flow", "parallelism": 2, "rate": 20, "period": 2},
    ).message_id
    for order in (95, 96, 97)
]
for message_id in flowed:
    delivered(message_id)
info = client.flow_control.get("py-flow")
assert (info.parallelism_max, info.rate_max, info.rate_period) == (2, 20, 2), info
ok("flow control: parallelism and rate per key")

keys = client.signing_key.get()
assert keys.current == "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r", keys
ok("signing keys")

print(f"1..{checks}")
