// The official TypeScript receiver (@upstash/qstash, pinned in package.json) over the shared
// cases, and its time for one verification of the 1 KiB bench token.
//
//   node check.mjs check CASES OUT
//   node check.mjs time BENCH OUT [MILLIS]
//
// Clock: the receiver (through jose) reads `new Date()`; for the verdicts the global Date is
// replaced by one whose "now" is each case's instant (the timing run keeps the real Date).
import { readFileSync, writeFileSync } from "node:fs";
import { Receiver } from "@upstash/qstash";

const RealDate = Date;
let fakeNowMs = null;
class FakeDate extends RealDate {
  constructor(...args) {
    if (args.length === 0 && fakeNowMs !== null) super(fakeNowMs);
    else super(...args);
  }
  static now() {
    return fakeNowMs ?? RealDate.now();
  }
}
// Only for the verdicts: the timing run keeps the real Date.
if (process.argv[2] === "check") globalThis.Date = FakeDate;

const version = JSON.parse(
  readFileSync(new URL("./node_modules/@upstash/qstash/package.json", import.meta.url)),
).version;
const name = `@upstash/qstash ${version} (TypeScript)`;

const utf8 = new TextDecoder("utf-8", { fatal: true });

async function check(casesPath, outPath) {
  const cases = JSON.parse(readFileSync(casesPath, "utf8"));
  const results = [];
  for (const c of cases) {
    const bytes = Buffer.from(c.body_b64, "base64");
    let body;
    try {
      body = utf8.decode(bytes);
    } catch {
      results.push({ name: c.name, verdict: "n/a", detail: "the API takes the body as a string; this body is not UTF-8" });
      continue;
    }
    const receiver = new Receiver({ currentSigningKey: c.current_key, nextSigningKey: c.next_key });
    fakeNowMs = c.now * 1000;
    let verdict = "ok";
    let detail = "";
    try {
      const ok = await receiver.verify({
        signature: c.token,
        body,
        url: c.url ?? undefined,
        clockTolerance: c.tolerance_secs,
      });
      if (ok !== true) {
        verdict = "reject";
        detail = `returned ${ok}`;
      }
    } catch (e) {
      verdict = "reject";
      detail = `${e?.name ?? "Error"}: ${e?.message ?? e}`.slice(0, 160);
    } finally {
      fakeNowMs = null;
    }
    results.push({ name: c.name, verdict, detail });
  }
  writeFileSync(outPath, JSON.stringify({ implementation: name, clock: "injected (global Date replaced)", results }, null, 2) + "\n");
}

async function time(benchPath, outPath, millis) {
  const b = JSON.parse(readFileSync(benchPath, "utf8"));
  const body = Buffer.from(b.body_b64, "base64").toString("utf8");
  const receiver = new Receiver({ currentSigningKey: b.current_key, nextSigningKey: b.next_key });
  const request = { signature: b.token, body, url: b.url, clockTolerance: 0 };
  if ((await receiver.verify(request)) !== true) throw new Error("bench token refused");
  const ns = () => Number(process.hrtime.bigint());
  let start = ns();
  let warm = 0;
  while (ns() - start < 300e6) {
    await receiver.verify(request);
    warm++;
  }
  const perCall = (ns() - start) / warm;
  const batchSize = Math.max(1, Math.floor(2e6 / perCall));
  const samples = [];
  start = ns();
  while (ns() - start < millis * 1e6 || samples.length < 51) {
    const t = ns();
    for (let i = 0; i < batchSize; i++) await receiver.verify(request);
    samples.push((ns() - t) / batchSize);
  }
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.round((samples.length - 1) * q)];
  writeFileSync(outPath, JSON.stringify({
    implementation: name, median_ns: at(0.5), p10_ns: at(0.1), p90_ns: at(0.9),
    batches: samples.length, batch_size: batchSize, iterations: samples.length * batchSize,
  }, null, 2) + "\n");
}

const [mode, input, out, millis] = process.argv.slice(2);
if (mode === "check") await check(input, out);
else if (mode === "time") await time(input, out, Number(millis ?? 3000));
else {
  console.error("usage: node check.mjs check CASES OUT | time BENCH OUT [MILLIS]");
  process.exit(2);
}
