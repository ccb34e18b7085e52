// The quickstart path: `qstash-receiver dev` + an example receiver + the official TypeScript
// client with QSTASH_DEV=true and nothing else set (no URL, no token). Run by scripts/clients.sh.
import assert from "node:assert/strict";
import { Client } from "@upstash/qstash";

// Refuse to go on unless a dev-mode handshake would find our server: the SDK would otherwise
// try to download the closed dev-server binary.
const devUrl = `http://127.0.0.1:${process.env.QSTASH_DEV_PORT ?? 8080}`;
const handshake = await fetch(`${devUrl}/v2/keys`, {
  headers: { Authorization: "Bearer eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=" },
});
const keys = await handshake.json();
assert.equal(keys.current, "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r");
assert.equal(keys.next, "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs");

const printed = [];
const log = console.log;
console.log = (...args) => {
  printed.push(args.join(" "));
  log(...args);
};
const client = new Client();
const { messageId } = await client.publishJSON({
  url: `${process.env.RECEIVER_URL}/api/webhook`,
  body: { order: 42 },
});
const deadline = Date.now() + 10_000;
while ((await client.logs({ filter: { messageId, state: "DELIVERED" } })).logs.length === 0) {
  if (Date.now() > deadline) throw new Error("the quickstart message was not delivered");
  await new Promise((resolve) => setTimeout(resolve, 25));
}
console.log = log;
assert.ok(
  printed.some((line) => line.includes("Server already running")),
  `the SDK did not find the local QStash: ${printed.join("\n")}`,
);
console.log("ok - quickstart: QSTASH_DEV=true publish delivered to the example receiver");
