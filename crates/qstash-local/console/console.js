// The local QStash console: reads and changes the local QStash through its own API (/v2/...),
// with the token kept in this tab's sessionStorage. No framework, no build step.

const TOKEN_KEY = 'qstash-local-token';
const POLL_MS = 1000;
const STATES = ['CREATED', 'ACTIVE', 'RETRY', 'ERROR', 'DELIVERED', 'FAILED',
  'CANCEL_REQUESTED', 'CANCELED'];

const main = document.getElementById('main');
const live = document.getElementById('live');

// ---- the token ----

// The banner's URL carries the token in the fragment, which browsers never send to a server
// (nor in a Referer): it is moved to sessionStorage and removed from the address bar.
function takeTokenFromFragment() {
  const hash = location.hash.replace(/^#/, '');
  const params = new URLSearchParams(hash.includes('=') && !hash.startsWith('/') ? hash : '');
  const token = params.get('token');
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search + '#/messages');
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

class ApiError extends Error {}

async function api(method, path, { body, headers = {} } = {}) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, ...headers },
    body,
    cache: 'no-store',
  });
  const text = await response.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch { value = text; }
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new ApiError('the token was refused');
  }
  if (!response.ok) {
    throw new ApiError((value && value.error) || `${response.status} ${response.statusText}`);
  }
  return value;
}

// ---- small DOM helpers ----

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function table(caption, headings, rows, empty) {
  return h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.length ? rows
      : h('tr', {}, h('td', { colspan: headings.length }, empty))));
}

const count = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const time = (ms) => (ms ? new Date(ms).toLocaleTimeString([], { hour12: false })
  + '.' + String(ms % 1000).padStart(3, '0') : '');

function fromNow(ms, now) {
  if (!ms) return '';
  const secs = Math.round((ms - now) / 1000);
  if (secs <= 0) return `${time(ms)} (due)`;
  return `${time(ms)} (in ${secs} s)`;
}

const messageLink = (id) => h('a', { href: `#/messages/${encodeURIComponent(id)}` }, id);
const stateCell = (state) => h('td', { class: `state-${state}` }, state);

function notice(text, isError = false) {
  return h('p', { class: isError ? 'notice error' : 'notice', role: isError ? 'alert' : 'status' },
    text);
}

// ---- views: each renders its frame once, then refresh() fills it on every poll ----

const views = {};

views.messages = () => {
  const filters = h('form', { class: 'filters', 'aria-label': 'Filters', onsubmit: (e) => e.preventDefault() },
    h('label', {}, 'State', h('select', { name: 'state' },
      h('option', { value: '' }, 'any'), STATES.map((s) => h('option', { value: s }, s)))),
    h('label', {}, 'Destination', h('input', { name: 'destination', type: 'search' })),
    h('label', {}, 'Label', h('input', { name: 'label', type: 'search' })),
    h('label', {}, 'Queue', h('input', { name: 'queue', type: 'search' })));
  const data = h('div');
  filters.addEventListener('input', () => refreshNow());
  main.replaceChildren(h('h1', {}, 'Messages'), filters, data);
  return async () => {
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(filters)) if (value) query.set(name, value);
    const answer = await api('GET', `/v2/console/messages?${query}`);
    return [answer.messages, () => data.replaceChildren(table(
      `${count(answer.messages.length, 'message')}, newest first`,
      ['Message', 'Kind', 'State', 'Destination', 'Queue', 'Label', 'Attempts', 'Last status',
        'Next delivery', 'Created'],
      answer.messages.map((m) => h('tr', {},
        h('td', { class: 'mono' }, messageLink(m.messageId)),
        h('td', {}, m.kind),
        stateCell(m.state),
        h('td', { class: 'mono' }, m.url),
        h('td', {}, m.queueName ?? ''),
        h('td', {}, m.label ?? ''),
        h('td', {}, m.attempts),
        h('td', {}, m.lastStatus ?? ''),
        h('td', {}, fromNow(m.nextDeliveryTime, answer.now)),
        h('td', {}, time(m.createdAt)))),
      'No messages yet. Publish one, or point a client at this server.'))];
  };
};

function hexDump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const chunk = bytes.slice(i, i + 16);
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const text = Array.from(chunk, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  |${text}|`);
  }
  return lines.join('\n');
}

function decode(base64) {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function bodyView(base64) {
  const bytes = decode(base64 || '');
  let text = null;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { text = null; }
  const pre = h('pre', { 'aria-label': 'Body' });
  const asText = h('button', { type: 'button', 'aria-pressed': 'true' }, 'Text');
  const asHex = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Hex');
  const show = (hex) => {
    asText.setAttribute('aria-pressed', String(!hex));
    asHex.setAttribute('aria-pressed', String(hex));
    pre.textContent = hex ? hexDump(bytes) : text;
  };
  asText.addEventListener('click', () => show(false));
  asHex.addEventListener('click', () => show(true));
  if (text === null) asText.disabled = true;
  show(text === null);
  return h('section', { 'aria-labelledby': 'body-heading' },
    h('h2', { id: 'body-heading' }, `Body (${bytes.length} bytes)`),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Show the body as' }, asText, asHex),
    bytes.length ? pre : h('p', {}, 'Empty.'));
}

views.message = (id) => {
  const data = h('div');
  const status = h('div');
  main.replaceChildren(h('h1', {}, 'Message ', h('code', {}, id)), status, data);
  let bodyShown = null;
  return async () => {
    const m = await api('GET', `/v2/console/messages/${encodeURIComponent(id)}`);
    return [m, () => {
      const facts = [
        ['State', h('span', { class: `state-${m.state}` }, m.state ?? 'unknown')],
        ['Kind', m.kind],
        ['Reports on', m.sourceMessageId && messageLink(m.sourceMessageId)],
        ['Destination', m.url ?? m.request?.url],
        ['Queue', m.queueName], ['URL group', m.topicName], ['Schedule', m.scheduleId],
        ['Label', m.label],
        ['Next retry', m.nextDeliveryTime && fromNow(m.nextDeliveryTime, m.now)],
        ['DLQ id', m.dlqId],
        ['Created', time(m.createdAt)],
      ].filter(([, v]) => v);
      const actions = h('div', { class: 'actions' });
      if (m.dlqId) {
        actions.append(
          h('button', { type: 'button', onclick: () => retryDead(m.dlqId, m.messageId, status) },
            'Retry from the DLQ'),
          h('button', { type: 'button', class: 'danger', onclick: () => deleteDead(m.dlqId, m.messageId, status) },
            'Delete from the DLQ'));
      } else if (m.message) {
        actions.append(h('button', { type: 'button', class: 'danger', onclick: () => cancel(id, status) },
          'Cancel message'));
      }
      const request = m.request;
      const headerRows = request ? Object.entries(request.header ?? {}).flatMap(([name, values]) =>
        values.map((v) => h('tr', {}, h('th', { scope: 'row', class: 'mono' }, name),
          h('td', { class: 'mono excerpt' }, v)))) : [];
      // The body section keeps its Text/Hex choice across polls.
      if (!bodyShown || bodyShown.dataset.body !== (request?.bodyBase64 ?? '')) {
        bodyShown = bodyView(request?.bodyBase64);
        bodyShown.dataset.body = request?.bodyBase64 ?? '';
      }
      data.replaceChildren(
        h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
        actions,
        h('h2', {}, 'Attempts'),
        table(`${count(m.attemptList.length, 'attempt')}, oldest first`,
          ['#', 'Time', 'Status', 'Duration', 'Outcome', 'Next retry', 'Reason', 'Answer'],
          m.attemptList.map((a, i) => h('tr', {},
            h('td', {}, i + 1),
            h('td', {}, time(a.at)),
            h('td', {}, a.status ?? 'no answer'),
            h('td', {}, `${a.durationMs} ms`),
            h('td', {}, a.outcome + (a.why ? ` (${a.why})` : '')),
            h('td', {}, a.nextRetryAt ? `${time(a.nextRetryAt)}: ${a.retryReason}` : ''),
            h('td', {}, a.reason ?? ''),
            h('td', { class: 'mono excerpt' }, a.error ?? a.answerExcerpt ?? ''))),
          'No attempt yet.'),
        h('h2', {}, 'Callbacks'),
        table('Callbacks this message caused',
          ['Message', 'Kind', 'State', 'Destination', 'Last status'],
          m.callbacks.map((c) => h('tr', {},
            h('td', { class: 'mono' }, messageLink(c.messageId)),
            h('td', {}, c.kind), stateCell(c.state), h('td', { class: 'mono' }, c.url),
            h('td', {}, c.lastStatus ?? ''))),
          'None.'),
        h('h2', {}, 'Headers'),
        request ? h('table', {}, h('caption', {}, `${request.method} ${request.url}`),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value'))),
          h('tbody', {}, headerRows)) : h('p', {}, 'Not kept.'),
        bodyShown);
    }];
  };
};

// Runs a change, says how it went (work returns a sentence, or writes its own notice).
async function act(status, work) {
  try {
    const text = await work();
    if (text) status.replaceChildren(notice(text));
  } catch (e) {
    status.replaceChildren(notice(`Failed: ${e.message}`, true));
  }
  refreshNow();
}

function retryDead(dlqId, messageId, status) {
  return act(status, async () => {
    const answer = await api('POST', `/v2/dlq/retry?dlqIds=${encodeURIComponent(dlqId)}`);
    const fresh = answer.responses?.[0]?.messageId;
    status.replaceChildren(h('p', { class: 'notice', role: 'status' },
      `Retried ${messageId} as `, messageLink(fresh), '.'));
    return undefined;
  });
}

function deleteDead(dlqId, messageId, status) {
  if (!confirm(`Delete ${messageId} from the DLQ?`)) return;
  return act(status, async () => {
    await api('DELETE', `/v2/dlq/${encodeURIComponent(dlqId)}`);
    return `Deleted ${messageId} from the DLQ.`;
  });
}

function cancel(id, status) {
  if (!confirm(`Cancel ${id}?`)) return;
  return act(status, async () => {
    await api('DELETE', `/v2/messages/${encodeURIComponent(id)}`);
    return `Cancelled ${id}.`;
  });
}

views.dlq = () => {
  const status = h('div');
  const data = h('div');
  let ids = [];
  const deleteAll = h('button', {
    type: 'button', class: 'danger',
    onclick: () => {
      if (!ids.length || !confirm(`Delete all ${ids.length} messages from the DLQ?`)) return;
      act(status, async () => {
        const answer = await api('DELETE', '/v2/dlq', {
          body: JSON.stringify({ dlqIds: ids }), headers: { 'Content-Type': 'application/json' },
        });
        return `Deleted ${answer.deleted} messages from the DLQ.`;
      });
    },
  }, 'Delete all');
  // The ids on the page, as the clients send them; the answer lists the new messages.
  const retryAll = h('button', {
    type: 'button',
    onclick: () => {
      if (!ids.length || !confirm(`Retry all ${ids.length} messages in the DLQ?`)) return;
      act(status, async () => {
        const answer = await api('POST', '/v2/dlq/retry', {
          body: JSON.stringify({ dlqIds: ids }), headers: { 'Content-Type': 'application/json' },
        });
        const fresh = (answer.responses ?? []).map((r) => r.messageId);
        status.replaceChildren(h('p', { class: 'notice', role: 'status' },
          `Retried ${count(fresh.length, 'message')} from the DLQ as `,
          fresh.flatMap((id, i) => (i ? [', ', messageLink(id)] : [messageLink(id)])), '.'));
        return undefined;
      });
    },
  }, 'Retry all');
  main.replaceChildren(h('h1', {}, 'Dead-letter queue'),
    h('div', { class: 'actions' }, retryAll, deleteAll), status, data);
  return async () => {
    const answer = await api('GET', '/v2/dlq?count=1000');
    const dead = answer.messages;
    return [dead, () => {
      ids = dead.map((d) => d.dlqId);
      deleteAll.disabled = !ids.length;
      retryAll.disabled = !ids.length;
      data.replaceChildren(table(count(dead.length, 'message'),
        ['Message', 'Destination', 'Status', 'Answer', 'Retried', 'Actions'],
        dead.map((d) => h('tr', {},
          h('td', { class: 'mono' }, messageLink(d.messageId)),
          h('td', { class: 'mono' }, d.url),
          h('td', {}, d.responseStatus || 'no answer'),
          h('td', { class: 'mono excerpt' }, (d.responseBody ?? '').slice(0, 200)),
          h('td', {}, d.retried ?? ''),
          h('td', {}, h('div', { class: 'actions' },
            h('button', { type: 'button', 'aria-label': `Retry ${d.messageId}`,
              onclick: () => retryDead(d.dlqId, d.messageId, status) }, 'Retry'),
            h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${d.messageId}`,
              onclick: () => deleteDead(d.dlqId, d.messageId, status) }, 'Delete'))))),
        'The DLQ is empty.'));
    }];
  };
};

// Lists with pause, resume and delete: schedules and queues; URL groups have delete only.
function resourceView({ title, path, key, columns, row, pausable, what }) {
  return () => {
    const status = h('div');
    const data = h('div');
    main.replaceChildren(h('h1', {}, title), status, data);
    const action = (label, method, suffix, name, confirmText) => h('button', {
      type: 'button', class: method === 'DELETE' ? 'danger' : undefined,
      'aria-label': `${label} ${name}`,
      onclick: () => {
        if (confirmText && !confirm(confirmText)) return;
        act(status, async () => {
          await api(method, `${path}/${encodeURIComponent(name)}${suffix}`);
          return `${label}: ${name}, done.`;
        });
      },
    }, label);
    return async () => {
      const items = await api('GET', path);
      return [items, () => data.replaceChildren(table(count(items.length, what[0], what[1]),
        [...columns, 'Actions'],
        items.map((item) => h('tr', {}, row(item), h('td', {}, h('div', { class: 'actions' },
          pausable && (item.isPaused ?? item.paused)
            ? action('Resume', 'POST', '/resume', item[key])
            : pausable && action('Pause', 'POST', '/pause', item[key]),
          action('Delete', 'DELETE', '', item[key], `Delete ${item[key]}?`))))),
        `No ${what[1]}.`))];
    };
  };
}

views.schedules = resourceView({
  title: 'Schedules', path: '/v2/schedules', key: 'scheduleId', pausable: true, what: ['schedule', 'schedules'],
  columns: ['Schedule', 'Destination', 'Cron', 'State', 'Next', 'Last'],
  row: (s) => [h('td', { class: 'mono' }, s.scheduleId), h('td', { class: 'mono' }, s.destination),
    h('td', { class: 'mono' }, s.cron), h('td', {}, s.isPaused ? 'paused' : 'active'),
    h('td', {}, time(s.nextScheduleTime)), h('td', {}, time(s.lastScheduleTime))],
});

views.queues = resourceView({
  title: 'Queues', path: '/v2/queues', key: 'name', pausable: true, what: ['queue', 'queues'],
  columns: ['Queue', 'Parallelism', 'Waiting', 'State'],
  row: (q) => [h('td', { class: 'mono' }, q.name), h('td', {}, q.parallelism), h('td', {}, q.lag),
    h('td', {}, q.paused ? 'paused' : 'active')],
});

views.groups = resourceView({
  title: 'URL groups', path: '/v2/topics', key: 'name', pausable: false, what: ['URL group', 'URL groups'],
  columns: ['URL group', 'Endpoints'],
  row: (g) => [h('td', { class: 'mono' }, g.name), h('td', { class: 'mono' },
    g.endpoints.map((e) => (e.name ? `${e.name}: ${e.url}` : e.url)).join('\n'))],
});

function parseHeaders(text) {
  const headers = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf(':');
    if (at <= 0) throw new ApiError(`a header line needs "Name: value": ${line.trim()}`);
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return headers;
}

views.publish = () => {
  const status = h('div');
  const form = h('form', { class: 'publish', 'aria-label': 'Publish a test message' },
    h('label', {}, 'Destination', h('input', { name: 'destination', required: true,
      placeholder: 'http://127.0.0.1:3000/api/qstash or a URL group name' })),
    h('label', {}, 'Queue', h('span', { class: 'hint' }, 'optional: enqueue instead of publish'),
      h('input', { name: 'queue' })),
    h('label', {}, 'Delay', h('span', { class: 'hint' }, 'e.g. 10s, 1m30s'),
      h('input', { name: 'delay' })),
    h('label', {}, 'Headers', h('span', { class: 'hint' },
      'one "Name: value" a line, e.g. Content-Type: application/json, Upstash-Retries: 3'),
    h('textarea', { name: 'headers' })),
    h('label', {}, 'Body', h('textarea', { name: 'body' })),
    h('div', {}, h('button', { type: 'submit' }, 'Publish')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const fields = Object.fromEntries(new FormData(form));
    act(status, async () => {
      const headers = parseHeaders(fields.headers);
      if (fields.delay.trim()) headers['Upstash-Delay'] = fields.delay.trim();
      const path = fields.queue.trim()
        ? `/v2/enqueue/${encodeURIComponent(fields.queue.trim())}/${fields.destination.trim()}`
        : `/v2/publish/${fields.destination.trim()}`;
      const answer = await api('POST', path, { body: fields.body, headers });
      const published = Array.isArray(answer) ? answer : [answer];
      status.replaceChildren(h('p', { class: 'notice', role: 'status' }, 'Published ',
        published.flatMap((p, i) => [i ? ', ' : '', messageLink(p.messageId)]), '.'));
      return undefined;
    });
  });
  main.replaceChildren(h('h1', {}, 'Publish a test message'), form, status);
  return null;
};

function tokenForm() {
  const form = h('form', { class: 'publish', 'aria-label': 'Sign in' },
    h('p', {}, 'Open the URL that qstash-receiver dev prints, or paste its token.'),
    h('label', {}, 'Token', h('input', { name: 'token', type: 'password', required: true,
      autocomplete: 'off' })),
    h('div', {}, h('button', { type: 'submit' }, 'Use token')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, new FormData(form).get('token').trim());
    route();
  });
  main.replaceChildren(h('h1', {}, 'Sign in'), form);
}

// ---- routing and live updates ----

let refresh = null;
let lastSeen = null;
let timer = null;

async function refreshNow() {
  if (!refresh) return;
  const current = refresh;
  try {
    const [data, render] = await current();
    if (current !== refresh) return;
    const seen = JSON.stringify(data, (k, v) => (k === 'now' ? undefined : v));
    if (seen !== lastSeen) {
      lastSeen = seen;
      render();
    }
    live.textContent = `Updated ${time(Date.now())}`;
  } catch (e) {
    if (!token()) { stop(); tokenForm(); return; }
    live.textContent = `Cannot read: ${e.message}`;
  }
}

function stop() {
  refresh = null;
  clearInterval(timer);
}

function route() {
  stop();
  lastSeen = null;
  if (!token()) { tokenForm(); return; }
  const [, section = 'messages', id] = location.hash.match(/^#\/([^/]*)\/?(.*)$/) ?? [];
  for (const link of document.querySelectorAll('nav a')) {
    const current = link.getAttribute('href') === `#/${section}`;
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  const view = id && section === 'messages' ? views.message : views[section] ?? views.messages;
  refresh = view(id ? decodeURIComponent(id) : undefined);
  if (refresh) {
    refreshNow();
    timer = setInterval(() => { if (!document.hidden) refreshNow(); }, POLL_MS);
  }
}

takeTokenFromFragment();
window.addEventListener('hashchange', route);
route();
