// presenced dashboard: plain JS, no dependencies, served by presenced itself (docs/api.md).
// Polls /v1/alerts (the "Firing now" panel: every page sent and not resolved, issue 17),
// /v1/fleet, /v1/incidents and /v1/silences every 2 s. The online share chart starts from the
// server's history (/v1/fleet/history: one sample per 10 s, the last hour) and goes on with the
// page's own polls. Links: #device=<id> and #incident=<n> open the detail view (alerts link there).
// Every time is shown in the browser's local time, with UTC on hover (one format everywhere).
'use strict';

const POLL_MS = 2000;
const SHARE_SAMPLES = 2000;
const STATES = ['online', 'suspect', 'offline', 'flapping', 'unknown'];
// Device list order when no state is chosen: what needs a look first.
// "unreachable" (issue 15) is a word of the API, not an engine state (the fleet counts hold it
// as offline): a down device behind a down parent, listed after the parents that need the look.
const WORST_FIRST = ['offline', 'flapping', 'suspect', 'unreachable', 'unknown', 'online'];
const DEVICE_ROWS = 200;          // rows per search (More continues)
const DEGRADED_SHARE = 0.2;       // a segment with this share offline or flapping stands out
const $ = (id) => document.getElementById(id);
const share = [];
let listing = null;   // device search in progress: {q, states, i, cursor}
let pagedMore = false;  // the user asked for more rows: stop re-running the search every poll
let alerts = [];      // last /v1/alerts
let incidents = [];   // last /v1/incidents

// A token can come with the link (the demo prints one): ?token=... is kept for this tab only
// and removed from the address bar and history at once.
(function takeToken() {
  const u = new URL(location.href);
  const t = u.searchParams.get('token');
  if (t === null) return;
  sessionStorage.setItem('presenced.token', t);
  u.searchParams.delete('token');
  history.replaceState(null, '', u.pathname + u.search + u.hash);
})();

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
  for (const c of children) {
    if (c === null || c === undefined || c === '') continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// ---- time: one format everywhere ------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
function clock(ms) {
  const d = new Date(ms);
  const hms = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  if (d.toDateString() === new Date().toDateString()) return hms;
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + hms;
}
function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 90) return Math.round(s) + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  if (s < 172800) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}
// <time>: local clock time (and how long ago), the UTC instant on hover.
function when(iso, relative = true) {
  const ms = Date.parse(iso);
  return el('time', { dateTime: iso, title: iso.replace('T', ' ').replace('Z', ' UTC') },
            clock(ms) + (relative ? ' (' + ago(ms) + ')' : ''));
}
function zoneName() {
  const off = -new Date().getTimezoneOffset();
  const z = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  return 'times: local' + (z ? ' (' + z + ', UTC' + (off >= 0 ? '+' : '−') +
      pad(Math.floor(Math.abs(off) / 60)) + ':' + pad(Math.abs(off) % 60) + ')' : '') +
      ', UTC on hover';
}

// ---- small pieces ---------------------------------------------------------------------------

function labelText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => k + '=' + v).join(' ');
}
function scopeOf(i) { return i.scope.key ? i.scope.key + '=' + i.scope.value : 'whole fleet'; }
function deviceLink(id) {
  return el('a', { href: '#device=' + encodeURIComponent(id), class: 'dev', 'data-device': id },
            id);
}
function incidentLink(n, text) {
  return el('a', { href: '#incident=' + n, 'data-incident': String(n) }, text || '#' + n);
}
function hintChips(hints) {
  return hints.map((h) => el('span', {
    class: 'hint',
    title: h.support + ' devices; ' + (h.share_in_incident * 100).toFixed(0) + ' % of the ' +
        'incident vs ' + (h.share_in_scope * 100).toFixed(0) + ' % of its scope',
  }, h.key + '=' + h.value + ' ×' + h.lift.toFixed(1)));
}
function pill(id, on, text, cls) {
  const p = $(id);
  p.textContent = text;
  p.className = 'pill ' + cls + (on ? '' : ' hidden');
}
function stateBadge(state) { return el('span', { class: 'state ' + state }, state); }
// The firing page of an incident (fleet_incident, reconnect_storm, blind), if any.
function incidentPage(id) {
  return alerts.find((a) => a.incident === id && (a.kind === 'incident' || a.kind === 'blind'));
}

// ---- Firing now -----------------------------------------------------------------------------

function renderAlerts(list) {
  alerts = list;
  const n = list.length;
  const worst = list.some((a) => a.severity === 'critical') ? 'down' : 'warn';
  pill('paging', true, n === 0 ? 'nothing paging' : n + ' paging', n === 0 ? 'up' : worst);
  $('firing').classList.toggle('alarm', n > 0);
  $('firing-none').classList.toggle('hidden', n > 0);
  $('firing-table').classList.toggle('hidden', n === 0);
  $('firing-error').classList.add('hidden');
  const body = $('firing-table').tBodies[0];
  // Keep open device lists open across polls.
  const open = new Set([...body.querySelectorAll('details[open]')].map((d) => d.dataset.key));
  body.replaceChildren();
  for (const a of list) {
    const scope = a.kind === 'device' && a.devices.length ? deviceLink(a.devices[0])
        : a.incident ? el('span', {}, a.scope + ' ', incidentLink(a.incident))
        : el('span', {}, a.scope);
    let devices = '';
    if (a.device_count > 0 && a.kind !== 'device') {
      devices = el('details', { 'data-key': a.dedup_key },
          el('summary', {}, a.device_count + (a.device_count === 1 ? ' device' : ' devices')),
          el('div', { class: 'ids' }, ...a.devices.flatMap((id) => [deviceLink(id), ' ']),
             a.device_count > a.devices.length
               ? '… ' + (a.device_count - a.devices.length) + ' more' : ''));
      if (open.has(a.dedup_key)) devices.open = true;
    } else if (a.kind === 'device') {
      devices = '1 device';
    }
    body.append(el('tr', { class: 'alert ' + (a.severity || 'unknown'), 'data-key': a.dedup_key,
                           'data-kind': a.kind },
        el('td', { class: 'nowrap' }, when(a.since)),
        el('td', {}, el('span', { class: 'sev ' + (a.severity || 'unknown') },
                        a.severity || 'sent before restart')),
        el('td', {}, a.kind),
        el('td', {}, scope),
        el('td', { class: 'summary' }, a.summary,
           a.cohort_hint.length ? el('div', {}, 'cohort: ', ...hintChips(a.cohort_hint)) : ''),
        el('td', {}, devices),
        el('td', {}, el('code', { class: 'key' }, a.dedup_key))));
  }
}

// ---- Fleet ----------------------------------------------------------------------------------

function renderFleet(f) {
  const conn = $('conn');
  conn.textContent = f.broker_connected ? 'broker connected' : 'broker not connected';
  conn.className = 'pill ' + (f.broker_connected ? 'up' : 'down');
  pill('blind', f.blind, 'blind', 'down');
  pill('grace', f.restart_grace, 'restart grace', 'warn');
  $('updated').replaceChildren('updated ', when(f.at, false));
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
  renderSegments(f.segments);
}

function renderSegments(segments) {
  // Scopes of incidents still open: their segments are degraded whatever the share says.
  const open = new Set(incidents.filter((i) => i.stage === 'open' && i.scope.key)
                                .map((i) => i.scope.key + '=' + i.scope.value));
  const rows = segments.map((s) => {
    const down = (s.counts.offline || 0) + (s.counts.flapping || 0);
    const frac = s.devices ? down / s.devices : 0;
    const name = s.key + '=' + s.value;
    return { s, name, down, frac, degraded: (down >= 2 && frac >= DEGRADED_SHARE) || open.has(name) };
  });
  rows.sort((a, b) => (b.degraded - a.degraded) || (b.frac - a.frac) || a.name.localeCompare(b.name));
  const body = $('segments').tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    const bar = el('div', { class: 'minibar' }, el('span'));
    bar.firstChild.style.width = (r.frac * 100).toFixed(1) + '%';
    body.append(el('tr', { class: r.degraded ? 'segment degraded' : 'segment',
                           'data-segment': r.name,
                           title: r.degraded ? 'degraded: ' + r.down + ' of ' + r.s.devices +
                               ' offline or flapping' : '' },
        el('td', {}, r.degraded ? el('b', {}, '⚠ ' + r.name) : r.name),
        el('td', {}, r.s.devices),
        ...['online', 'suspect', 'offline', 'flapping'].map(
            (st) => el('td', { class: (r.s.counts[st] || 0) && st !== 'online' ? 'state ' + st : '' },
                       r.s.counts[st] || 0)),
        el('td', {}, bar, (r.frac * 100).toFixed(0) + ' %')));
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

const NS = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Online share over time with its axes, incident open/resolve markers and the firing pages.
function drawShare() {
  const svg = $('share');
  const W = Math.max(300, Math.round(svg.getBoundingClientRect().width) || 600), H = 170;
  const L = 44, R = 10, T = 14, B = 22;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.replaceChildren();
  if (share.length === 0) return;
  // At least 20 s wide, the newest sample at the right edge.
  const t1 = share[share.length - 1].t, t0 = Math.min(share[0].t, t1 - 20000);
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - v) * (H - T - B);
  // y axis: 0..100 %
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(svgEl('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(svgEl('text', { x: L - 5, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' },
                     Math.round(v * 100) + '%'));
  }
  // x axis: local clock ticks, a round step giving at most 6 labels
  const steps = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000);
  const step = steps.find((s) => (t1 - t0) / s <= 6) || steps[steps.length - 1];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const d = new Date(t);
    const text = pad(d.getHours()) + ':' + pad(d.getMinutes()) +
        (step < 60000 ? ':' + pad(d.getSeconds()) : '');
    svg.append(svgEl('line', { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4, class: 'tick' }));
    svg.append(svgEl('text', { x: x(t), y: H - 5, class: 'axis', 'text-anchor': 'middle' }, text));
  }
  svg.append(svgEl('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axisline' }));
  svg.append(svgEl('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axisline' }));
  // markers
  const mark = (t, cls, label, title) => {
    if (t < t0 || t > t1 + 5000) return;
    const g = svgEl('g', { class: 'marker ' + cls });
    g.append(svgEl('title', {}, title));
    g.append(svgEl('line', { x1: x(t), x2: x(t), y1: T, y2: H - B }));
    // Labels near the right edge go left of their line, so they are not cut off.
    const right = x(t) > W - R - 40;
    if (label) g.append(svgEl('text', { x: right ? x(t) - 3 : x(t) + 3, y: T - 3,
                                        'text-anchor': right ? 'end' : 'start' }, label));
    svg.append(g);
  };
  for (const i of incidents) {
    const scope = scopeOf(i);
    mark(Date.parse(i.opened_at), 'inc', '#' + i.id,
         `incident #${i.id} opened ${clock(Date.parse(i.opened_at))}: ${i.kind}, ${scope}`);
    if (i.resolved_at)
      mark(Date.parse(i.resolved_at), 'res', '#' + i.id + ' ✓',
           `incident #${i.id} resolved ${clock(Date.parse(i.resolved_at))}`);
  }
  for (const a of alerts)
    if (a.kind !== 'incident' && a.kind !== 'blind')
      mark(Date.parse(a.since), 'page', '', `page sent ${clock(Date.parse(a.since))}: ${a.summary}`);
  const pts = share.map((p) => x(p.t).toFixed(1) + ',' + y(p.v).toFixed(1));
  if (pts.length === 1) pts.push((W - R) + ',' + y(share[0].v).toFixed(1));
  svg.append(svgEl('polyline', { points: pts.join(' '), class: 'share' }));
  const last = share[share.length - 1].v;
  const span = Math.round((t1 - t0) / 1000);
  $('share-label').textContent = '— ' + (last * 100).toFixed(1) + ' % of known devices online now; ' +
      'last ' + (span < 120 ? span + ' s' : Math.round(span / 60) + ' min');
}

// ---- Incidents ------------------------------------------------------------------------------

// What the on-call needs from the stage: is the page still open? (A "recovering" incident has
// already sent its RESOLVED; issue 17.)
function pageStatus(i) {
  const page = incidentPage(i.id);
  if (page) return { cls: 'paging', text: 'PAGE FIRING since ' + clock(Date.parse(page.since)) };
  if (i.stage === 'open') return { cls: 'quiet', text: 'open, not paged (held or silenced)' };
  const resolved = i.resolved_at ? 'page resolved ' + clock(Date.parse(i.resolved_at)) : 'resolved';
  if (i.stage === 'closed') return { cls: 'closed', text: resolved + ', closed' };
  return { cls: 'recovering', text: resolved + '; waiting for stragglers (' + i.still_down +
      ' still down)' };
}

function renderIncidents(list) {
  incidents = list;
  const box = $('incident-list');
  box.replaceChildren();
  if (list.length === 0) { box.append(el('p', { class: 'muted' }, 'none')); return; }
  const now = Date.now();
  const t0 = Math.min(...list.map((i) => Date.parse(i.opened_at)));
  const span = Math.max(now - t0, 1);
  for (const i of [...list].reverse()) {
    const from = Date.parse(i.opened_at);
    const to = i.closed_at ? Date.parse(i.closed_at) : now;
    const bar = el('div', { class: 'bar' }, el('span'));
    bar.firstChild.style.left = ((from - t0) / span * 100) + '%';
    bar.firstChild.style.width = ((to - from) / span * 100) + '%';
    const st = pageStatus(i);
    const row = el('div', { class: 'incident ' + st.cls + ' stage-' + i.stage, 'data-id': i.id },
        el('div', {}, incidentLink(i.id, '#' + i.id + ' ' + i.kind + ' — ' + scopeOf(i)), ' ',
           el('span', { class: 'status ' + st.cls }, st.text)),
        el('div', { class: 'muted' }, 'opened ', when(i.opened_at), ', ' + i.count + ' of ' +
           i.population + ' devices (' + (i.share * 100).toFixed(0) + ' %), ' + i.still_down +
           ' still down, ' + i.held + ' held, ' + i.stragglers + ' stragglers'),
        bar, i.cohort_hint.length ? el('div', {}, 'cohort hint: ', ...hintChips(i.cohort_hint)) : '');
    box.append(row);
  }
}

// ---- Detail view (#device=<id>, #incident=<n>) ----------------------------------------------

function route() {
  const h = decodeURIComponent(location.hash.replace(/^#/, ''));
  if (h.startsWith('device=')) return { kind: 'device', id: h.slice(7) };
  if (h.startsWith('incident=')) return { kind: 'incident', id: Number(h.slice(9)) };
  return null;
}

async function showDetail(scroll) {
  const r = route();
  const box = $('detail');
  box.classList.toggle('hidden', !r);
  if (!r) return;
  const body = $('detail-body');
  try {
    body.replaceChildren(...(r.kind === 'device' ? await deviceView(r.id) : await incidentView(r.id)));
    box.dataset.view = r.kind + '=' + r.id;
  } catch (e) {
    body.replaceChildren(el('h2', {}, r.kind + ' ' + r.id), el('p', { class: 'error' }, e.message));
  }
  if (scroll) box.scrollIntoView({ block: 'nearest' });
}

async function deviceView(id) {
  const d = await api('/v1/devices/' + encodeURIComponent(id));
  const pages = alerts.filter((a) => a.devices.includes(d.id));
  const rows = [...d.transitions].reverse().map((t) => el('tr', {},
      el('td', { class: 'nowrap' }, when(t.at, false)),
      el('td', {}, stateBadge(t.from), ' → ', stateBadge(t.to)),
      el('td', {}, t.reason + (t.disconnect_reason ? ' (' + t.disconnect_reason + ')' : ''))));
  return [
    el('h2', { class: 'detail-title' }, 'Device ', el('span', { class: 'id' }, d.id), ' ',
       el('span', { class: 'badge ' + d.state }, d.state),
       d.parent ? el('span', { class: 'muted' }, ' behind ', deviceLink(d.parent)) : ''),
    el('dl', { class: 'facts' },
       el('dt', {}, 'since'), el('dd', {}, when(d.since), ' — ', d.reason +
          (d.disconnect_reason ? ' (' + d.disconnect_reason + ')' : '')),
       el('dt', {}, 'last seen'), el('dd', {}, when(d.last_seen)),
       el('dt', {}, 'heartbeat'), el('dd', {}, d.heartbeat.mean_ms
          ? 'every ~' + Math.round(d.heartbeat.mean_ms / 1000) + ' s, timeout ' +
            Math.round(d.heartbeat.timeout_ms / 1000) + ' s' : 'none observed'),
       el('dt', {}, 'labels'), el('dd', {}, ...Object.entries(d.labels).map(
          ([k, v]) => el('span', { class: 'label' }, k + '=' + v))),
       el('dt', {}, 'incident'), el('dd', {}, d.held_by_incident
          ? el('span', {}, 'held by ', incidentLink(d.held_by_incident),
               ' (its own page is held while the incident pages)') : 'not held'),
       el('dt', {}, 'paging'), el('dd', { id: 'device-pages' }, pages.length
          ? el('ul', {}, ...pages.map((a) => el('li', {}, el('span', { class: 'sev ' + a.severity },
              a.severity || '?'), ' ', a.summary, ' — since ', when(a.since),
              ' ', el('code', { class: 'key' }, a.dedup_key))))
          : 'no open page names this device')),
    el('h3', {}, 'State history ', el('span', { class: 'muted' }, 'newest first')),
    el('table', { id: 'history' }, el('thead', {}, el('tr', {}, el('th', {}, 'at'),
        el('th', {}, 'transition'), el('th', {}, 'reason'))), el('tbody', {}, ...rows)),
  ];
}

async function incidentView(id) {
  const d = await api('/v1/incidents/' + id);
  const st = pageStatus(d);
  const ids = (label, list, cls) => el('div', { class: 'idlist ' + cls },
      el('b', {}, label + ' (' + list.length + (list.length >= 1000 ? '+' : '') + '): '),
      ...(list.length ? list.flatMap((x) => [deviceLink(x), ' ']) : ['none']));
  return [
    el('h2', { class: 'detail-title' }, 'Incident #' + d.id + ' ', d.kind + ' — ' + scopeOf(d),
       ' ', el('span', { class: 'status ' + st.cls }, st.text)),
    el('dl', { class: 'facts' },
       el('dt', {}, 'opened'), el('dd', {}, when(d.opened_at)),
       el('dt', {}, 'resolved'), el('dd', {}, d.resolved_at ? when(d.resolved_at) : '—'),
       el('dt', {}, 'closed'), el('dd', {}, d.closed_at ? when(d.closed_at) : '—'),
       el('dt', {}, 'devices'), el('dd', {}, d.count + ' of ' + d.population + ' dropped (' +
          (d.share * 100).toFixed(0) + ' %), peak ' + d.peak_down + ' down, ' + d.still_down +
          ' still down'),
       el('dt', {}, 'cohort hint'), el('dd', {}, ...(d.cohort_hint.length
          ? hintChips(d.cohort_hint) : ['none'])),
       el('dt', {}, 'firing pages'), el('dd', {}, d.alerts.length
          ? d.alerts.map((k) => el('code', { class: 'key' }, k)) : 'none')),
    ids('still down', d.still_held_devices, 'still'),
    ids('stragglers', d.straggler_devices, 'stragglers'),
    ids('held (all)', d.held_devices, 'held'),
  ];
}

// ---- Silences -------------------------------------------------------------------------------

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
                   el('td', {}, when(s.ends_at, false)), el('td', {}, s.comment),
                   el('td', {}, del)));
  }
}

// ---- Device hygiene (issue 14) ----------------------------------------------------------------
// The report scans every tracked device on the engine thread: read it every DOCTOR_MS, not at the
// 2 s poll.
const DOCTOR_MS = 30000;

function renderDoctor(r) {
  const counts = Object.entries(r.counts).filter(([, n]) => n > 0)
    .map(([k, n]) => k + ' ' + n).join(', ');
  $('doctor-summary').textContent = r.devices_checked + ' device(s) checked, ' +
    r.findings.length + ' finding(s)' + (r.truncated ? ' (first ' + r.findings.length + ')' : '') +
    (counts ? ': ' + counts : '');
  $('doctor-table').tBodies[0].replaceChildren(...r.findings.map((f) => el('tr', {},
    el('td', {}, deviceLink(f.id)),
    el('td', {}, el('code', {}, f.check)), el('td', {}, f.problem), el('td', {}, f.fix))));
}

function refreshDoctor() {
  return api('/v1/doctor?limit=200').then(renderDoctor,
    (e) => { $('doctor-summary').textContent = 'cannot read the report: ' + e.message; });
}

// ---- Devices (worst first) ------------------------------------------------------------------

function queryString() {
  const p = new URLSearchParams();
  if ($('q-prefix').value) p.set('id_prefix', $('q-prefix').value);
  const l = $('q-label').value.trim();
  if (l.includes('=')) p.set('label.' + l.split('=')[0], l.slice(l.indexOf('=') + 1));
  return p.toString();
}

// Without a state filter the list goes state by state, worst first (offline, flapping,
// suspect, unknown, online), so what needs a look is at the top of a 100,000 device fleet too.
async function search(more) {
  if (!more) {
    const st = $('q-state').value;
    listing = { q: queryString(), states: st ? [st] : WORST_FIRST, i: 0, cursor: null };
  }
  const L = listing;
  const rows = [];
  try {
    while (L.i < L.states.length && rows.length < DEVICE_ROWS) {
      const q = new URLSearchParams(L.q);
      q.set('state', L.states[L.i]);
      q.set('limit', String(DEVICE_ROWS - rows.length));
      if (L.cursor) q.set('cursor', L.cursor);
      const page = await api('/v1/devices?' + q.toString());
      rows.push(...page.devices);
      L.cursor = page.next_cursor;
      if (!L.cursor) { L.i += 1; }
      $('device-count').textContent = page.total + ' known';
    }
  } catch (e) {
    $('device-table').tBodies[0].replaceChildren(
        el('tr', {}, el('td', { class: 'error', colSpan: 5 }, e.message)));
    return;
  }
  if (listing !== L) return;  // a newer search started meanwhile
  const body = $('device-table').tBodies[0];
  if (!more) body.replaceChildren();
  for (const d of rows) {
    const tr = el('tr', { class: 'device ' + d.state, 'data-id': d.id },
        el('td', { class: 'nowrap' }, deviceLink(d.id)),
        el('td', { class: 'state ' + d.state }, d.state,
           d.parent ? el('span', { class: 'muted' }, ' behind ', deviceLink(d.parent)) : ''),
        el('td', { class: 'nowrap' }, when(d.since)),
        el('td', {}, d.reason + (d.disconnect_reason ? ' (' + d.disconnect_reason + ')' : '')),
        el('td', { class: 'labels' }, labelText(d.labels)));
    tr.addEventListener('click', (e) => {
      if (e.target.tagName !== 'A') location.hash = 'device=' + encodeURIComponent(d.id);
    });
    body.append(tr);
  }
  $('more').classList.toggle('hidden', L.i >= L.states.length);
}

// ---- polling --------------------------------------------------------------------------------

async function refresh() {
  // Each section reports its own trouble (e.g. incidents and silences answer 503 while the
  // alert policy is off); the rest of the page keeps updating. Alerts and incidents first: the
  // chart markers and the segment highlights use them.
  const [a, i] = await Promise.allSettled([api('/v1/alerts'), api('/v1/incidents')]);
  if (a.status === 'fulfilled') {
    renderAlerts(a.value.alerts);
  } else {
    $('firing-error').textContent = 'cannot read the firing pages: ' + a.reason.message;
    $('firing-error').classList.remove('hidden');
    pill('paging', true, 'paging: unknown', 'warn');
  }
  if (i.status === 'fulfilled') renderIncidents(i.value.incidents);  // uses the alerts
  else $('incident-list').replaceChildren(el('p', { class: 'muted' }, i.reason.message));
  await Promise.allSettled([
    api('/v1/fleet').then(renderFleet, (e) => { $('updated').textContent = e.message; }),
    api('/v1/silences').then((b) => { renderSilences(b.silences); $('silence-error').textContent = ''; },
                             (e) => { $('silence-error').textContent = e.message; }),
  ]);
  if (route()) showDetail(false);
}

$('tz').textContent = zoneName();
$('search').addEventListener('submit', (e) => { e.preventDefault(); pagedMore = false; search(false); });
$('more').addEventListener('click', () => { pagedMore = true; search(true); });
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
window.addEventListener('hashchange', () => showDetail(true));
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && route()) location.hash = '';
});
window.addEventListener('resize', drawShare);

loadHistory().then(refresh).then(() => showDetail(true));
search(false);
setInterval(refresh, POLL_MS);
refreshDoctor();
setInterval(refreshDoctor, DOCTOR_MS);
// The device table follows the fleet too (the browser test waits for a drop to show here), unless
// the user paged further with More.
setInterval(() => { if (!pagedMore) search(false); }, POLL_MS);
