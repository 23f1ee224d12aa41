// presenced dashboard: plain JS, no dependencies, served by presenced itself (docs/api.md).
// Polls /v1/fleet, /v1/incidents and /v1/silences. The online share chart starts from the
// server's history (/v1/fleet/history: one sample per 10 s, the last hour) and goes on with the
// page's own polls.
'use strict';

const POLL_MS = 2000;
const SHARE_SAMPLES = 2000;
const STATES = ['online', 'suspect', 'offline', 'flapping', 'unknown'];
const $ = (id) => document.getElementById(id);
const share = [];
let cursor = null;
let lastQuery = '';
let openIncident = null;  // incident whose held devices and stragglers are shown

function token() { return sessionStorage.getItem('presenced.token') || ''; }

async function api(path, init = {}) {
  const headers = Object.assign({}, init.headers || {});
  if (token()) headers['Authorization'] = 'Bearer ' + token();
  const res = await fetch(path, Object.assign({}, init, { headers }));
  if (res.status === 204) return null;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = (body && body.error) || {};
    throw new Error((e.code || res.status) + ': ' + (e.message || res.statusText));
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return Math.round(s) + 's ago';
  if (s < 5400) return Math.round(s / 60) + 'm ago';
  if (s < 172800) return Math.round(s / 3600) + 'h ago';
  return Math.round(s / 86400) + 'd ago';
}

function labelText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => k + '=' + v).join(' ');
}

function pill(id, on, text, cls) {
  const p = $(id);
  p.textContent = text;
  p.className = 'pill ' + cls + (on ? '' : ' hidden');
}

function renderFleet(f) {
  const conn = $('conn');
  conn.textContent = f.broker_connected ? 'broker connected' : 'broker not connected';
  conn.className = 'pill ' + (f.broker_connected ? 'up' : 'down');
  pill('blind', f.blind, 'blind', 'down');
  pill('grace', f.restart_grace, 'restart grace', 'warn');
  $('updated').textContent = 'updated ' + new Date(f.at).toLocaleTimeString();
  const tiles = $('tiles');
  tiles.replaceChildren(el('div', { class: 'tile', 'data-state': 'devices' },
                           el('b', {}, f.devices), 'devices'));
  for (const s of STATES) {
    tiles.append(el('div', { class: 'tile ' + s, 'data-state': s },
                    el('b', { id: 'count-' + s }, f.counts[s] || 0), s));
  }
  const sample = sampleOf(Date.parse(f.at), f.counts);
  if (sample) share.push(sample);
  while (share.length > SHARE_SAMPLES) share.shift();
  drawShare();
  const body = $('segments').tBodies[0];
  body.replaceChildren();
  for (const s of f.segments) {
    body.append(el('tr', {}, el('td', {}, s.key + '=' + s.value), el('td', {}, s.devices),
                   ...['online', 'suspect', 'offline', 'flapping'].map(
                       (st) => el('td', {}, s.counts[st] || 0))));
  }
}

function sampleOf(t, counts) {
  const known = STATES.reduce((n, s) => n + (counts[s] || 0), 0) - (counts.unknown || 0);
  return known > 0 ? { t, v: (counts.online || 0) / known } : null;  // no devices: no point
}

async function loadHistory() {
  try {
    const h = await api('/v1/fleet/history');
    const older = h.samples.map((x) => sampleOf(Date.parse(x.at), x.counts)).filter((x) => x);
    const first = share.length ? share[0].t : Infinity;
    share.unshift(...older.filter((x) => x.t < first));
    drawShare();
  } catch (e) { /* the chart then starts with the page */ }
}

function drawShare() {
  const svg = $('share');
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  if (share.length === 0) return;
  const t0 = share[0].t, t1 = Math.max(share[share.length - 1].t, t0 + 1);
  const pts = share.map((p) => ((p.t - t0) / (t1 - t0) * 600).toFixed(1) + ',' +
                               (115 - p.v * 110).toFixed(1));
  if (pts.length === 1) pts.push('600,' + pts[0].split(',')[1]);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts.join(' '));
  svg.append(line);
  const last = share[share.length - 1].v;
  const span = Math.round((t1 - t0) / 1000);
  $('share-label').textContent = (last * 100).toFixed(1) + '% of known devices online now; ' +
      'chart: last ' + (span < 120 ? span + 's' : Math.round(span / 60) + ' min');
}

function renderIncidents(list) {
  const box = $('incident-list');
  box.replaceChildren();
  if (list.length === 0) { box.append(el('p', { class: 'muted' }, 'none')); return; }
  const now = Date.now();
  const t0 = Math.min(...list.map((i) => Date.parse(i.opened_at)));
  const span = Math.max(now - t0, 1);
  for (const i of [...list].reverse()) {
    const from = Date.parse(i.opened_at);
    const to = i.closed_at ? Date.parse(i.closed_at) : now;
    const scope = i.scope.key ? i.scope.key + '=' + i.scope.value : 'whole fleet';
    const bar = el('div', { class: 'bar' }, el('span'));
    bar.firstChild.style.left = ((from - t0) / span * 100) + '%';
    bar.firstChild.style.width = ((to - from) / span * 100) + '%';
    const hints = i.cohort_hint.map((h) => el('span', { class: 'hint' },
        h.key + '=' + h.value + ' ×' + h.lift.toFixed(1) + ' (' + h.support + ')'));
    const detail = el('div', { class: 'incident-detail' });
    const row = el('div', { class: 'incident ' + i.stage, 'data-id': i.id },
        el('b', {}, '#' + i.id + ' ' + i.kind + ' — ' + scope), ' ',
        el('span', { class: 'muted' }, i.stage + ', opened ' + ago(i.opened_at) + ', ' +
           i.count + '/' + i.population + ' devices (' + (i.share * 100).toFixed(0) + '%), ' +
           i.still_down + ' still down, ' + i.held + ' held, ' + i.stragglers + ' stragglers'),
        bar, hints.length ? el('div', {}, 'cohort hint: ', ...hints) : '', detail);
    row.addEventListener('click', () => {
      openIncident = openIncident === i.id ? null : i.id;
      renderIncidents(list);
    });
    box.append(row);
    if (openIncident === i.id) showIncident(i.id, detail);
  }
}

async function showIncident(id, box) {
  try {
    const d = await api('/v1/incidents/' + id);
    const ids = (label, list) => list.length
      ? el('div', {}, el('b', {}, label + ' (' + list.length + '): '), list.join(', ')) : '';
    box.replaceChildren(ids('still held', d.still_held_devices), ids('held', d.held_devices),
                        ids('stragglers', d.straggler_devices), ids('firing alerts', d.alerts));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

function renderSilences(list) {
  const body = $('silence-table').tBodies[0];
  body.replaceChildren();
  for (const s of list) {
    const del = el('button', { type: 'button' }, 'Delete');
    del.addEventListener('click', async () => {
      try { await api('/v1/silences/' + s.id, { method: 'DELETE' }); refresh(); }
      catch (e) { $('silence-error').textContent = e.message; }
    });
    body.append(el('tr', {}, el('td', {}, s.id), el('td', {}, labelText(s.match) || '(all)'),
                   el('td', {}, new Date(s.ends_at).toLocaleString()), el('td', {}, s.comment),
                   el('td', {}, del)));
  }
}

function queryString() {
  const p = new URLSearchParams();
  if ($('q-prefix').value) p.set('id_prefix', $('q-prefix').value);
  if ($('q-state').value) p.set('state', $('q-state').value);
  const l = $('q-label').value.trim();
  if (l.includes('=')) p.set('label.' + l.split('=')[0], l.slice(l.indexOf('=') + 1));
  p.set('limit', '100');
  return p.toString();
}

async function search(more) {
  const q = more ? lastQuery : queryString();
  lastQuery = q;
  const body = $('device-table').tBodies[0];
  if (!more) { body.replaceChildren(); cursor = null; }
  try {
    // Follow the cursor until something matched or the scan ended (a page may be short).
    let page;
    let found = 0;
    do {
      page = await api('/v1/devices?' + q + (cursor ? '&cursor=' + cursor : ''));
      cursor = page.next_cursor;
      found += page.devices.length;
      for (const d of page.devices) {
        const tr = el('tr', { class: 'device', 'data-id': d.id },
            el('td', {}, d.id), el('td', { class: 'state ' + d.state }, d.state),
            el('td', {}, ago(d.since)),
            el('td', {}, d.reason + (d.disconnect_reason ? ' (' + d.disconnect_reason + ')' : '')),
            el('td', {}, labelText(d.labels)));
        tr.addEventListener('click', () => showDevice(d.id));
        body.append(tr);
      }
    } while (cursor && found === 0);
    $('more').classList.toggle('hidden', !cursor);
  } catch (e) {
    body.replaceChildren(el('tr', {}, el('td', { class: 'error', colSpan: 5 }, e.message)));
  }
}

async function showDevice(id) {
  const box = $('device-detail');
  box.classList.remove('hidden');
  try {
    const d = await api('/v1/devices/' + encodeURIComponent(id));
    const rows = [...d.transitions].reverse().map((t) => el('tr', {},
        el('td', {}, new Date(t.at).toLocaleTimeString()),
        el('td', {}, t.from + ' → ' + t.to),
        el('td', {}, t.reason + (t.disconnect_reason ? ' (' + t.disconnect_reason + ')' : ''))));
    box.replaceChildren(
        el('h3', {}, d.id + ' ', el('span', { class: 'state ' + d.state }, d.state)),
        el('div', { class: 'muted' }, 'since ' + d.since + ' (' + d.reason + '), last seen ' +
           ago(d.last_seen) + (d.heartbeat.mean_ms ? ', heartbeat every ~' +
           Math.round(d.heartbeat.mean_ms / 1000) + 's' : '') +
           (d.held_by_incident ? ', held by incident #' + d.held_by_incident : '')),
        el('div', {}, labelText(d.labels)),
        el('table', { id: 'history' }, el('thead', {}, el('tr', {}, el('th', {}, 'at'),
            el('th', {}, 'transition'), el('th', {}, 'reason'))), el('tbody', {}, ...rows)));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

async function refresh() {
  // Each section reports its own trouble (e.g. incidents and silences answer 503 while the
  // alert policy is off); the rest of the page keeps updating.
  await Promise.allSettled([
    api('/v1/fleet').then(renderFleet, (e) => { $('updated').textContent = e.message; }),
    api('/v1/incidents').then((b) => renderIncidents(b.incidents), (e) => {
      $('incident-list').replaceChildren(el('p', { class: 'muted' }, e.message));
    }),
    api('/v1/silences').then((b) => { renderSilences(b.silences); $('silence-error').textContent = ''; },
                             (e) => { $('silence-error').textContent = e.message; }),
  ]);
}

$('search').addEventListener('submit', (e) => { e.preventDefault(); search(false); });
$('more').addEventListener('click', () => search(true));
$('s-token').value = token();
// Off loopback every read needs the token too: entering it retries at once.
$('s-token').addEventListener('change', () => {
  sessionStorage.setItem('presenced.token', $('s-token').value.trim());
  refresh();
  search(false);
});
$('silence-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  sessionStorage.setItem('presenced.token', $('s-token').value.trim());
  const match = {};
  for (const part of $('s-match').value.split(',')) {
    const i = part.indexOf('=');
    if (i > 0) match[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  try {
    await api('/v1/silences', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ match, duration: $('s-duration').value.trim(),
                             comment: $('s-comment').value }),
    });
    $('silence-error').textContent = '';
    refresh();
  } catch (err) {
    $('silence-error').textContent = err.message;
  }
});

loadHistory().then(refresh);
search(false);
setInterval(refresh, POLL_MS);
// The device table follows the fleet too (the browser test waits for a drop to show here).
setInterval(() => { if (!cursor) search(false); }, POLL_MS);
