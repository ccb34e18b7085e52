// The local QStash's web console, end to end in headless Chromium (run by scripts/console.sh).
//
// A tiny receiver refuses deliveries (401, as a receiver with the wrong signing keys does)
// until it is told to accept them. Through the page only: publish to it, watch the attempts
// appear, see the message land in the DLQ, make the receiver accept, retry from the page, see
// the retry delivered. Then: the body as text and hex, the message filters, DLQ delete (one,
// all, and a dismissed confirmation), DLQ retry all (a dismissed confirmation, then an
// accepted one), schedules, queues and URL groups (pause, resume, delete), and that nothing
// is readable without the token.
//
// Environment: QSTASH_BIN (the qstash-receiver binary), CHROMIUM (default /usr/bin/chromium),
// SCREENSHOTS (a directory: screenshots of the main pages are written there).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.QSTASH_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = process.env.SCREENSHOTS || '';
const WAIT_MS = 15000;

const cleanups = [];
let failed = false;

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

async function step(name, work) {
  const started = Date.now();
  try {
    await work();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed = true;
    console.log(`FAIL ${name}: ${error.stack || error}`);
    throw error;
  }
}

// ---- the receiver: refuses until `accept` is set ----

const receiver = { accept: false, seen: 0 };

function startReceiver() {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      receiver.seen += 1;
      if (receiver.accept) {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{"handled":true}');
      } else {
        response.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('invalid QStash signature');
      }
    });
  });
  cleanups.push(() => server.close());
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

// ---- qstash-receiver dev on a free port; its banner names the console's URL ----

function startDev() {
  const child = spawn(BIN, ['dev', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill());
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no console URL in the banner:\n${output}`)), WAIT_MS);
    const read = (chunk) => {
      output += chunk;
      const found = output.match(/(http:\/\/127\.0\.0\.1:\d+)\/console#token=(\S+)/);
      if (found) {
        clearTimeout(timer);
        resolve({ base: found[1], consoleUrl: found[0], token: decodeURIComponent(found[2]) });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`qstash-receiver dev exited (${code}):\n${output}`)));
  });
}

async function main() {
  check(BIN, 'QSTASH_BIN names the qstash-receiver binary');
  const hookPort = await startReceiver();
  const hook = `http://127.0.0.1:${hookPort}/hook`;
  const dev = await startDev();
  const api = async (method, path, { body, headers = {} } = {}) => {
    const response = await fetch(`${dev.base}${path}`, {
      method, body, headers: { Authorization: `Bearer ${dev.token}`, ...headers },
    });
    check(response.ok, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
    return response.json();
  };

  const profile = mkdtempSync(join(tmpdir(), 'console-chromium-'));
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1100, height: 720 },
  });
  cleanups.unshift(() => context.close());
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  const shot = async (name) => {
    if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, `console-${name}.png`), fullPage: true });
  };
  const nav = (name) => page.getByRole('navigation', { name: 'Sections' })
    .getByRole('link', { name, exact: true }).click();
  const row = (tableName, text) => page.getByRole('table', { name: tableName })
    .getByRole('row').filter({ hasText: text });

  await step('the banner URL opens the console and the token leaves the address bar', async () => {
    await page.goto(dev.consoleUrl);
    await page.getByRole('heading', { name: 'Messages', level: 1 }).waitFor();
    check(!page.url().includes('token'), `the token stays in the address bar: ${page.url()}`);
  });

  let first;
  await step('publish from the page to a refusing receiver', async () => {
    await nav('Publish');
    await page.getByLabel('Destination').fill(hook);
    await page.getByLabel('Headers').fill([
      'Content-Type: application/json',
      'Upstash-Retries: 2',
      'Upstash-Retry-Delay: 400',
      'Upstash-Label: e2e',
    ].join('\n'));
    await page.getByLabel('Body').fill('{"hello":"console"}');
    await shot('publish');
    await page.getByRole('button', { name: 'Publish' }).click();
    const link = page.getByRole('status').filter({ hasText: 'Published' }).getByRole('link');
    first = await link.textContent();
    check(/^msg_/.test(first), `a message id: ${first}`);
    await link.click();
    await page.getByRole('heading', { name: `Message ${first}` }).waitFor();
  });

  await step('its attempts appear live, with status and reason, then it lands in the DLQ', async () => {
    const attempts = page.getByRole('table', { name: /attempts?, oldest first/ });
    await attempts.getByRole('row').filter({ hasText: 'invalid QStash signature' }).first().waitFor();
    await page.getByText('FAILED', { exact: true }).first().waitFor();
    await attempts.getByRole('row').nth(3).waitFor();
    const rows = await attempts.getByRole('row').count();
    check(rows === 4, `a header row and 3 attempts, got ${rows}`);
    const text = await attempts.innerText();
    check((text.match(/401/g) || []).length >= 3, `three 401 answers: ${text}`);
    check(/retry/.test(text) && /dlq \(no retries left\)/.test(text), `outcomes: ${text}`);
    check(/Upstash-Retry-Delay expression/.test(text), `the next retry's reason: ${text}`);
    await page.getByRole('button', { name: 'Retry from the DLQ' }).waitFor();
    await shot('message');
  });

  await step('the body shows as text and as hex', async () => {
    const body = page.getByLabel('Body', { exact: true });
    check((await body.textContent()) === '{"hello":"console"}', 'the body as text');
    await page.getByRole('button', { name: 'Hex' }).click();
    const hex = await body.textContent();
    check(hex.startsWith('00000000  7b 22 68 65 6c 6c 6f'), `the body as hex: ${hex}`);
    await page.getByRole('button', { name: 'Text', exact: true }).click();
    check((await body.textContent()) === '{"hello":"console"}', 'back to text');
  });

  let second;
  await step('the DLQ lists it; after the fix, retry from the page; it is delivered', async () => {
    await nav('DLQ');
    await row(/messages?$/, first).waitFor();
    await shot('dlq');
    receiver.accept = true;
    await page.getByRole('button', { name: `Retry ${first}` }).click();
    const link = page.getByRole('status').filter({ hasText: `Retried ${first} as` }).getByRole('link');
    second = await link.textContent();
    check(/^msg_/.test(second) && second !== first, `a new message id: ${second}`);
    await page.getByText('The DLQ is empty.').waitFor();
    await link.click();
    await page.getByRole('heading', { name: `Message ${second}` }).waitFor();
    await page.getByText('DELIVERED', { exact: true }).first().waitFor();
    const attempts = await page.getByRole('table', { name: /attempts?, oldest first/ }).innerText();
    check(/200/.test(attempts) && /delivered/.test(attempts) && /handled/.test(attempts),
      `one delivered attempt with its answer: ${attempts}`);
  });

  await step('the message list filters by state, destination, label and queue', async () => {
    await api('POST', '/v2/queues', {
      body: JSON.stringify({ queueName: 'e2e-queue', parallelism: 1 }),
      headers: { 'Content-Type': 'application/json' },
    });
    const queued = await api('POST', `/v2/enqueue/e2e-queue/http://127.0.0.1:${hookPort}/queued`,
      { body: 'q' });
    await nav('Messages');
    const list = page.getByRole('table', { name: /messages?, newest first/ });
    await list.getByRole('row').filter({ hasText: queued.messageId }).waitFor();
    await shot('messages');
    const ids = async () => (await list.innerText()).match(/msg_\w+/g) ?? [];
    const expect = async (what, want) => {
      for (let i = 0; i < 50; i += 1) {
        const got = await ids();
        if (want(got)) return;
        await page.waitForTimeout(100);
      }
      throw new Error(`${what}: ${await ids()}`);
    };
    const filters = page.getByRole('form', { name: 'Filters' });
    await filters.getByLabel('State').selectOption('FAILED');
    await expect('state FAILED', (got) => got.includes(first) && !got.includes(second));
    await filters.getByLabel('State').selectOption('');
    await filters.getByLabel('Queue').fill('e2e-queue');
    await expect('queue', (got) => got.length === 1 && got[0] === queued.messageId);
    await filters.getByLabel('Queue').fill('');
    await filters.getByLabel('Label').fill('e2e');
    await expect('label', (got) => got.includes(first) && got.includes(second)
      && !got.includes(queued.messageId));
    await filters.getByLabel('Label').fill('');
    await filters.getByLabel('Destination').fill('/queued');
    await expect('destination', (got) => got.length === 1 && got[0] === queued.messageId);
    await filters.getByLabel('Destination').fill('');
  });

  await step('DLQ delete: one, all after a confirmation, nothing when dismissed', async () => {
    receiver.accept = false;
    const dead = [];
    for (let i = 0; i < 3; i += 1) {
      dead.push((await api('POST', `/v2/publish/${hook}`, {
        body: `dead ${i}`, headers: { 'Upstash-Retries': '0' },
      })).messageId);
    }
    await nav('DLQ');
    for (const id of dead) await row(/messages?$/, id).waitFor();
    page.once('dialog', (dialog) => dialog.accept());
    await page.getByRole('button', { name: `Delete ${dead[0]}` }).click();
    await row(/messages?$/, dead[0]).waitFor({ state: 'detached' });
    page.once('dialog', (dialog) => dialog.dismiss());
    await page.getByRole('button', { name: 'Delete all' }).click();
    await row(/messages?$/, dead[1]).waitFor();
    let asked = '';
    page.once('dialog', (dialog) => { asked = dialog.message(); dialog.accept(); });
    await page.getByRole('button', { name: 'Delete all' }).click();
    await page.getByText('The DLQ is empty.').waitFor();
    check(asked === 'Delete all 2 messages from the DLQ?', `the confirmation: ${asked}`);
    const left = await api('GET', '/v2/dlq');
    check(left.messages.length === 0, `the DLQ is empty: ${JSON.stringify(left)}`);
  });

  await step('DLQ retry all: nothing when dismissed, both retried after a confirmation', async () => {
    receiver.accept = false;
    const dead = [];
    for (let i = 0; i < 2; i += 1) {
      dead.push((await api('POST', `/v2/publish/${hook}`, {
        body: `retry ${i}`, headers: { 'Upstash-Retries': '0' },
      })).messageId);
    }
    await nav('DLQ');
    for (const id of dead) await row(/messages?$/, id).waitFor();
    // The page sends its request in the click's own task, so a dismissed confirmation that
    // still retried would be counted here before the second click.
    const retries = [];
    const onRequest = (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname === '/v2/dlq/retry') {
        retries.push(request.postData());
      }
    };
    page.on('request', onRequest);
    receiver.accept = true;
    page.once('dialog', (dialog) => dialog.dismiss());
    await page.getByRole('button', { name: 'Retry all' }).click();
    for (const id of dead) await row(/messages?$/, id).waitFor();
    check((await api('GET', '/v2/dlq')).messages.length === 2, 'both still in the DLQ');
    let asked = '';
    page.once('dialog', (dialog) => { asked = dialog.message(); dialog.accept(); });
    await page.getByRole('button', { name: 'Retry all' }).click();
    const done = page.getByRole('status').filter({ hasText: 'Retried 2 messages from the DLQ as' });
    await done.waitFor();
    await page.getByText('The DLQ is empty.').waitFor();
    page.off('request', onRequest);
    check(asked === 'Retry all 2 messages in the DLQ?', `the confirmation: ${asked}`);
    check(retries.length === 1, `one retry request, after the accepted confirmation: ${retries.length}`);
    const fresh = await done.getByRole('link').allTextContents();
    check(fresh.length === 2 && fresh.every((id) => /^msg_/.test(id) && !dead.includes(id))
      && fresh[0] !== fresh[1], `two new message ids: ${fresh}`);
    check((await api('GET', '/v2/dlq')).messages.length === 0, 'the DLQ is empty');
    await nav('Messages');
    const list = page.getByRole('table', { name: /messages?, newest first/ });
    for (const id of fresh) {
      await list.getByRole('row').filter({ hasText: id }).filter({ hasText: 'DELIVERED' }).waitFor();
    }
  });

  await step('schedules, queues and URL groups: pause, resume, delete', async () => {
    const { scheduleId } = await api('POST', `/v2/schedules/${hook}`,
      { headers: { 'Upstash-Cron': '0 0 1 1 *' } });
    await api('POST', '/v2/topics/e2e-group/endpoints', {
      body: JSON.stringify({ endpoints: [{ name: 'one', url: hook }] }),
      headers: { 'Content-Type': 'application/json' },
    });
    for (const [section, name, pausable] of [['Schedules', scheduleId, true],
      ['Queues', 'e2e-queue', true], ['URL groups', 'e2e-group', false]]) {
      await nav(section);
      await page.getByRole('heading', { name: section, level: 1 }).waitFor();
      const line = row(/\d/, name);
      await line.waitFor();
      if (pausable) {
        await page.getByRole('button', { name: `Pause ${name}` }).click();
        await line.filter({ hasText: 'paused' }).waitFor();
        if (section === 'Schedules') await shot('schedules');
        await page.getByRole('button', { name: `Resume ${name}` }).click();
        await line.filter({ hasText: 'active' }).waitFor();
      }
      page.once('dialog', (dialog) => dialog.accept());
      await page.getByRole('button', { name: `Delete ${name}` }).click();
      await line.waitFor({ state: 'detached' });
    }
    check((await api('GET', '/v2/schedules')).length === 0, 'no schedule left');
    check((await api('GET', '/v2/queues')).length === 0, 'no queue left');
    check((await api('GET', '/v2/topics')).length === 0, 'no URL group left');
  });

  await step('nothing is readable without the token', async () => {
    const fresh = await context.newPage();
    await fresh.goto(`${dev.base}/console#/messages`);
    await fresh.getByRole('heading', { name: 'Sign in' }).waitFor();
    const html = await fresh.content();
    check(!html.includes(first), 'no message id on a page without the token');
    const status = await fresh.evaluate(async () => (await fetch('/v2/console/messages')).status);
    check(status === 401, `the view without the token: ${status}`);
    await fresh.getByLabel('Token').fill(dev.token);
    await fresh.getByRole('button', { name: 'Use token' }).click();
    await fresh.getByRole('table', { name: /messages?, newest first/ }).getByRole('row')
      .filter({ hasText: second }).waitFor();
    await fresh.close();
  });

  check(pageErrors.length === 0, `errors on the page: ${pageErrors.join('; ')}`);
}

try {
  await main();
  console.log('console: all steps passed');
} catch (error) {
  if (!failed) console.log(`FAIL ${error.stack || error}`);
  process.exitCode = 1;
} finally {
  for (const cleanup of cleanups) {
    try { await cleanup(); } catch { /* already gone */ }
  }
}
