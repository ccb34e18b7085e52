// The official TypeScript client (@upstash/qstash) against `qstash-receiver dev`: publishes
// reach the example receivers (axum, actix), which verify them; the official `Receiver`
// accepts the tokens the local QStash signs. Run by scripts/clients.sh.
import http from "node:http";
import assert from "node:assert/strict";
import { Client, Receiver } from "@upstash/qstash";

const { QSTASH_URL, QSTASH_TOKEN, AXUM_URL, ACTIX_URL } = process.env;
const KEYS = {
  currentSigningKey: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
  nextSigningKey: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
};
const client = new Client({ baseUrl: QSTASH_URL, token: QSTASH_TOKEN, devMode: false });

/** Polls `check` until it returns a truthy value (10 s at most: a safety net, not a wait). */
async function until(what, check) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const logsOf = async (filter) => (await client.logs({ filter })).logs;
const delivered = (messageId) =>
  until(`${messageId} delivered`, async () => (await logsOf({ messageId, state: "DELIVERED" })).length > 0);

let checks = 0;
const ok = (name) => {
  checks += 1;
  console.log(`ok ${checks} - ${name}`);
};

// 1. Both example receivers verify and handle what the client publishes, and their callback
//    routes (which verify `sub` = the callback URL) take the callbacks.
for (const [name, base] of [["axum", AXUM_URL], ["actix", ACTIX_URL]]) {
  const { messageId } = await client.publishJSON({
    url: `${base}/api/webhook`,
    body: { order: 7 },
    callback: `${base}/api/callback`,
  });
  assert.match(messageId, /^msg_/);
  await delivered(messageId);
  await until(`${name} callback`, async () =>
    (await logsOf({ url: `${base}/api/callback`, state: "DELIVERED" })).length > 0);
  ok(`${name}: publishJSON delivered, verified, callback delivered`);

  // Order 0 is refused for good (489 + Upstash-NonRetryable-Error): DLQ, failure callback.
  const refused = await client.publishJSON({
    url: `${base}/api/webhook`,
    body: { order: 0 },
    failureCallback: `${base}/api/callback`,
    retries: 3,
  });
  const dead = await until(`${name} dlq`, async () => {
    const { messages } = await client.dlq.listMessages();
    return messages.find((m) => m.messageId === refused.messageId);
  });
  assert.equal(dead.responseStatus, 489);
  const attempts = await logsOf({ messageId: refused.messageId, state: "ERROR" });
  assert.equal(attempts.length, 1, "no retry after 489");
  ok(`${name}: 489 goes straight to the DLQ`);
}

// 2. Queues, batches, URL groups, schedules, messages: the client's calls are answered.
const queue = client.queue({ queueName: "ts-orders" });
await queue.upsert({ parallelism: 2 });
const queued = await queue.enqueueJSON({ url: `${AXUM_URL}/api/webhook`, body: { order: 11 } });
await delivered(queued.messageId);
assert.equal((await queue.get()).parallelism, 2);
ok("queue upsert, enqueueJSON, get");

const batch = await client.batchJSON([
  { url: `${AXUM_URL}/api/webhook`, body: { order: 21 } },
  { url: `${ACTIX_URL}/api/webhook`, body: { order: 22 } },
]);
assert.equal(batch.length, 2);
for (const { messageId } of batch) await delivered(messageId);
ok("batchJSON");

await client.urlGroups.addEndpoints({
  name: "ts-group",
  endpoints: [{ url: `${AXUM_URL}/api/webhook` }, { url: `${ACTIX_URL}/api/webhook` }],
});
const fanned = await client.publishJSON({ urlGroup: "ts-group", body: { order: 31 } });
assert.equal(fanned.length, 2);
for (const { messageId } of fanned) await delivered(messageId);
assert.equal((await client.urlGroups.get("ts-group")).endpoints.length, 2);
ok("URL group fan-out");

const later = await client.publishJSON({ url: `${AXUM_URL}/api/webhook`, body: { order: 41 }, delay: 3600 });
const message = await client.messages.get(later.messageId);
assert.equal(message.messageId, later.messageId);
assert.ok(message.notBefore >= message.createdAt + 3_600_000);
await client.messages.delete(later.messageId);
await assert.rejects(client.messages.get(later.messageId));
ok("messages get and cancel");

const { scheduleId } = await client.schedules.create({
  destination: `${AXUM_URL}/api/webhook`,
  cron: "0 0 1 1 *",
  body: JSON.stringify({ order: 51 }),
});
assert.equal((await client.schedules.get(scheduleId)).cron, "0 0 1 1 *");
await client.schedules.pause({ schedule: scheduleId });
assert.equal((await client.schedules.get(scheduleId)).isPaused, true);
await client.schedules.delete(scheduleId);
ok("schedules create, get, pause, delete");

const dedupe = { url: `${AXUM_URL}/api/webhook`, body: { order: 61 }, deduplicationId: "ts-61" };
const first = await client.publishJSON(dedupe);
const second = await client.publishJSON(dedupe);
assert.equal(second.messageId, first.messageId);
assert.equal(second.deduplicated, true);
ok("deduplication id");

// 3. Filters, per-element batch results, flow control: each does what it says.
const hook = `${AXUM_URL}/api/webhook`;
const drop = await Promise.all(
  [1, 2].map((n) => client.publishJSON({ url: hook, body: { order: 70 + n }, delay: 3600, label: "ts-drop" })),
);
const keep = await client.publishJSON({ url: hook, body: { order: 73 }, delay: 3600, label: ["ts-keep", "ts-other"] });
assert.equal((await client.messages.cancel({ filter: { label: "ts-drop" } })).cancelled, 2);
await assert.rejects(client.messages.get(drop[0].messageId));
const kept = await client.messages.get(keep.messageId);
assert.deepEqual(kept.labels, ["ts-keep", "ts-other"]);
assert.equal((await client.messages.cancel({ filter: { label: "ts-keep" } })).cancelled, 1);
ok("messages.cancel with a label filter cancels only what matches; labels are a list");

const mixed = await client.batchJSON([
  { url: hook, body: { order: 81 } },
  { urlGroup: "ts-no-such-group", body: { order: 82 } },
  { url: hook, body: { order: 83 } },
]);
assert.equal(mixed.length, 3);
assert.match(mixed[1].error, /not found/);
for (const n of [0, 2]) await delivered(mixed[n].messageId);
ok("batch: each element its own result, a bad one stops nothing");

const deadLabelled = await client.publishJSON({ url: hook, body: { order: 0 }, label: "ts-dead" });
await until("labelled dlq", async () => {
  const { messages } = await client.dlq.listMessages({ filter: { label: "ts-dead" } });
  return messages.length === 1 && messages[0].messageId === deadLabelled.messageId;
});
assert.equal((await client.dlq.listMessages({ filter: { label: "ts-nobody" } })).messages.length, 0);
assert.equal((await client.dlq.delete({ filter: { label: "ts-dead" } })).deleted, 1);
const labelledLogs = await logsOf({ label: "ts-dead", state: "CREATED" });
assert.deepEqual(labelledLogs.map((l) => l.messageId), [deadLabelled.messageId]);
ok("DLQ list and delete, and logs, take filters");

const flowControl = { key: "ts-flow", parallelism: 1, ratePerSecond: 50 };
const flowed = await Promise.all(
  [91, 92, 93].map((order) => client.publishJSON({ url: hook, body: { order }, flowControl })),
);
for (const { messageId } of flowed) await delivered(messageId);
const info = await client.flowControl.get("ts-flow");
assert.equal(info.parallelismMax, 1);
assert.equal(info.rateMax, 50);
await client.flowControl.pause("ts-flow");
const paused = await client.publishJSON({ url: hook, body: { order: 94 }, flowControl, delay: 0 });
assert.equal((await client.flowControl.get("ts-flow")).isPaused, true);
assert.equal((await client.messages.get(paused.messageId)).flowControlKey, "ts-flow");
await client.flowControl.resume("ts-flow");
await delivered(paused.messageId);
assert.ok((await client.flowControl.getGlobalParallelism()).parallelismMax > 0);
ok("flow control: parallelism and rate per key, pause and resume, echoed in the message");

// 4. The official Receiver accepts the tokens the local QStash signs, and refuses a tampered body.
const receiver = new Receiver(KEYS);
const verdicts = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", async () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const signature = req.headers["upstash-signature"];
    const url = `http://127.0.0.1:${server.address().port}${req.url}`;
    let valid = false;
    try {
      valid = await receiver.verify({ signature, body, url });
    } catch {}
    let tamperedAccepted = false;
    try {
      tamperedAccepted = await receiver.verify({ signature, body: body + " ", url });
    } catch {}
    verdicts.push({ path: req.url, method: req.method, valid, tamperedAccepted });
    res.writeHead(valid ? 200 : 401).end();
  });
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const own = `http://127.0.0.1:${server.address().port}`;
await client.publishJSON({ url: `${own}/json?x=1`, body: { hello: "world" } });
await client.publish({ url: `${own}/text`, body: "plain text", headers: { "X-Team": "blue" } });
await client.publish({ url: `${own}/get`, method: "GET" });
await until("three verdicts", () => verdicts.length === 3);
server.close();
for (const verdict of verdicts) {
  assert.equal(verdict.valid, true, `Receiver refused ${verdict.path}`);
  assert.equal(verdict.tamperedAccepted, false, `Receiver accepted a tampered ${verdict.path}`);
}
assert.deepEqual(verdicts.map((v) => v.method).sort(), ["GET", "POST", "POST"]);
ok("the official Receiver verifies the local QStash's tokens");

console.log(`1..${checks}`);
