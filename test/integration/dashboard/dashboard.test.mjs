// Browser test of the dashboard (issues 7 and 17): a real mosquitto on a free loopback port, a
// real presenced, real devices (mosquitto_pub), a mock webhook receiver, Debian's chromium driven
// by playwright-core. Checks that the page loads, lists the devices worst first, shows a drop
// without a reload, that the "Firing now" panel shows exactly the page the receiver got and drops
// it when the receiver gets its resolve, that a device link opens the device view and that the
// degraded segment is marked.
//
//   node dashboard.test.mjs     (env: PRESENCED, SCREENSHOT_DIR=dir for dashboard.png,
//                                firing.png and device.png (docs/img/), CHROMIUM)
// Exit 0 = passed, 1 = failed, 77 = skipped (chromium or playwright-core missing).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const presencedBin = process.env.PRESENCED || path.resolve(here, '../../../build/presence/app/presenced');
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = process.env.SCREENSHOT_DIR || '';
const SKIP = 77;

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  console.log('SKIP: playwright-core not installed (npm ci in test/integration/dashboard)');
  process.exit(SKIP);
}
if (!fs.existsSync(chromiumBin)) {
  console.log(`SKIP: ${chromiumBin} missing (apt-get install chromium)`);
  process.exit(SKIP);
}

const children = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presence-dashboard-'));
let browser;
let receiver;
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (receiver) await new Promise((r) => receiver.close(r));
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

// Bounded polling: never a bare sleep as the assertion.
async function waitFor(what, pred, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try { if (await pred()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function run(cmd, args, log) {
  const out = fs.openSync(path.join(dir, log), 'a');
  const c = spawn(cmd, args, { stdio: ['ignore', out, out] });
  children.push(c);
  return c;
}

function pub(port, topic, payload) {
  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', topic,
                                 '-m', payload]);
}

async function main() {
  const mqttPort = await freePort();
  const httpPort = await freePort();
  fs.writeFileSync(path.join(dir, 'mosquitto.conf'),
                   `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  run('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], 'mosquitto.log');
  await waitFor('mosquitto', () => new Promise((resolve) => {
    const s = net.connect(mqttPort, '127.0.0.1', () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  }), 5000);

  // The mock webhook receiver: every payload presenced sends, in order, validated.
  const received = [];
  const receiverErrors = [];
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      try {
        const j = JSON.parse(body);
        for (const k of ['v', 'action', 'type', 'severity', 'dedup_key', 'summary', 'timestamp'])
          if (!(k in j)) throw new Error('webhook payload without ' + k + ': ' + body);
        if (req.url !== '/webhook' || req.method !== 'POST') throw new Error(req.method + ' ' + req.url);
        received.push(j);
      } catch (e) { receiverErrors.push(String(e.message || e)); }
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const sinkPort = receiver.address().port;

  const token = 'dashboard-test-token';
  fs.writeFileSync(path.join(dir, 'presenced.yaml'), [
    'mqtt:', `  uri: tcp://127.0.0.1:${mqttPort}`, '  client_id: presenced-dashboard-test',
    'presence:', '  offline_grace: 1s', '  online_stable_for: 1s',
    '  restart_grace_min: 100ms', '  restart_grace_settle: 100ms', '  restart_grace_max: 1s',
    'http:', `  listen: 127.0.0.1:${httpPort}`, `  token: ${token}`,
    'store:', `  dir: ${path.join(dir, 'store')}`,
    'output:', '  coalesce_interval: 50ms',
    // A small fleet: 5 drops and 20 % of a segment are an incident.
    'alerts:', '  webhook:', '    enabled: true', `    url: http://127.0.0.1:${sinkPort}/webhook`,
    '  policy:', '    incident_open_floor: 5', '    incident_open_fraction: 0.2', '    group_wait: 1s',
    // The incident resolves 2 s after its devices are back (the test waits for that RESOLVE).
    '    incident_window: 10s', '    incident_stable_for: 2s', '    straggler_grace: 1h', ''].join('\n'));
  const presenced = run(presencedBin, ['--config', path.join(dir, 'presenced.yaml')], 'presenced.log');
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor('presenced /readyz', async () => (await fetch(base + '/readyz')).status === 200,
                10000);
  await waitFor('restart grace to end', async () => {
    const f = await (await fetch(base + '/v1/fleet')).json();
    return !f.restart_grace;
  }, 10000);

  // 55 devices on 3 sites. Firmware 3.9.0 is common in berlin and lyon but rare in paris. When
  // the six paris devices running it drop, the incident names both: the core opens it in the
  // broadest segment that explains the drop (firmware=3.9.0, docs/alert-policy.md) and points at
  // site=paris as the cohort hint.
  const devices = [];
  const add = (site, n, fw39) => {
    for (let i = 0; i < n; ++i)
      devices.push({ id: `sensor-${site}-${String(i).padStart(2, '0')}`, site,
                     firmware: i < fw39 ? '3.9.0' : '3.8.0' });
  };
  add('paris', 25, 6);
  add('berlin', 15, 12);
  add('lyon', 15, 12);
  for (const d of devices)
    pub(mqttPort, `devices/${d.id}/status`,
        JSON.stringify({ state: 'online', site: d.site, firmware: d.firmware }));
  await waitFor('55 devices online in /v1/fleet', async () => {
    const f = await (await fetch(base + '/v1/fleet')).json();
    return f.counts.online === devices.length;
  }, 5000);

  // A fresh profile every run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
    executablePath: chromiumBin,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));

  await page.goto(base + '/');
  await waitFor('every device in the table', async () =>
    (await page.locator('#device-table tbody tr.device').count()) === devices.length, 10000);
  // The device-hygiene panel (issue 14, GET /v1/doctor): read at load, these status-only devices
  // are set up well enough for every check this config can make.
  await waitFor('the device-hygiene panel', async () =>
    (await page.locator('#doctor-summary').textContent()) ===
      `${devices.length} device(s) checked, 0 finding(s)`, 5000);
  const online = await page.locator('#count-online').textContent();
  if (online !== String(devices.length)) throw new Error(`online tile shows ${online}`);
  for (const d of devices) {
    const state = await page.locator(`tr.device[data-id="${d.id}"] td.state`).textContent();
    if (state !== 'online') throw new Error(`${d.id} shows ${state}`);
  }
  if (await page.locator('#incident-list .incident').count() !== 0)
    throw new Error('an incident before anything dropped');
  await waitFor('"Nothing is paging"', async () => page.locator('#firing-none').isVisible(), 5000);
  if (await page.locator('#firing-table tbody tr').count() !== 0)
    throw new Error('a firing row before anything was sent');
  // One time format: every time on the page is a <time> with its UTC instant on hover.
  const times = await page.locator('time').evaluateAll((ts) => ts.map((t) => [t.textContent, t.title]));
  if (times.length === 0 || !times.every(([text, title]) => /^\d\d:\d\d:\d\d/.test(text) &&
                                          / UTC$/.test(title)))
    throw new Error('times not in the one format: ' + JSON.stringify(times.slice(0, 5)));

  // The six paris devices on firmware 3.9.0 drop (last-will "offline"): the page follows without
  // a reload, shows the incident with its scope and cohort hint, and the page the receiver got.
  const dropped = devices.filter((d) => d.site === 'paris' && d.firmware === '3.9.0');
  for (const d of dropped) pub(mqttPort, `devices/${d.id}/status`, 'offline');
  const first = dropped[0].id;
  await waitFor(`${first} offline on the page`, async () =>
    (await page.locator(`tr.device[data-id="${first}"] td.state`).textContent()) === 'offline',
    15000);
  await waitFor('offline tile = 6', async () =>
    (await page.locator('#count-offline').textContent()) === '6', 5000);
  // Worst first: the six offline devices head the list.
  const order = await page.locator('#device-table tbody tr.device td.state').allTextContents();
  if (!order.slice(0, 6).every((s) => s === 'offline') || order.slice(6).includes('offline'))
    throw new Error('device list not worst first: ' + order.slice(0, 10).join(' '));
  await waitFor('the incident with its cohort hint', async () => {
    const text = await page.locator('#incident-list .incident').first().textContent();
    return text.includes('site=paris') && text.includes('firmware=3.9.0');
  }, 10000).catch(async (e) => {
    throw new Error(e.message + ': ' + await (await fetch(base + '/v1/incidents')).text());
  });

  // Firing now = what the receiver got: the same dedup key, the same summary, nothing else.
  await waitFor('the receiver to get the incident page', async () =>
    received.some((p) => p.action === 'trigger'), 15000);
  const sent = received.filter((p) => p.action === 'trigger');
  if (sent.length !== 1 || sent[0].type !== 'fleet_incident')
    throw new Error('receiver got: ' + JSON.stringify(received));
  const key = sent[0].dedup_key;
  const row = page.locator(`#firing-table tr.alert[data-key="${key}"]`);
  await waitFor('the page in "Firing now"', async () => (await row.count()) === 1, 5000);
  if (await page.locator('#firing-table tbody tr.alert').count() !== 1)
    throw new Error('"Firing now" shows more than the one page sent');
  const rowText = await row.textContent();
  if (!rowText.includes(sent[0].summary) || !rowText.includes(sent[0].severity))
    throw new Error(`firing row "${rowText}" does not match the payload ${JSON.stringify(sent[0])}`);
  if (!(await page.locator('#paging').textContent()).includes('1 paging'))
    throw new Error('header does not say 1 paging');

  // The degraded segment stands out (6 of 25 paris devices offline).
  await waitFor('site=paris marked degraded', async () =>
    (await page.locator('#segments tr.segment.degraded[data-segment="site=paris"]').count()) === 1,
    5000);
  if (await page.locator('#segments tr.segment.degraded[data-segment="site=berlin"]').count() !== 0)
    throw new Error('a healthy segment is marked degraded');
  // The chart has its axes and the incident's marker.
  await waitFor('the chart with axes and the incident marker', async () =>
    (await page.locator('#share polyline').count()) === 1 &&
    (await page.locator('#share text.axis').count()) >= 5 &&
    (await page.locator('#share .marker.inc').count()) >= 1, 5000);
  if (shots) {
    fs.mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'firing.png') });
  }

  // The device link in the page's device list opens the device view (#device=<id>).
  await row.locator('details summary').click();
  await row.locator(`a[data-device="${first}"]`).click();
  await waitFor(`#device=${first} open`, async () =>
    page.url().endsWith('#device=' + first) && await page.locator('#detail').isVisible() &&
    (await page.locator('#detail .detail-title').textContent()).includes(first), 5000);
  await waitFor(`state history of ${first}`, async () =>
    (await page.locator('#history tbody tr').count()) >= 3, 5000);
  const history = await page.locator('#history tbody').textContent();
  if (!history.includes('online → suspect') || !history.includes('suspect → offline'))
    throw new Error('history shows: ' + history);
  const detail = await page.locator('#detail').textContent();
  if (!detail.includes('held by #'))
    throw new Error('device view does not say which incident holds it: ' + detail);
  if (shots) await page.screenshot({ path: path.join(shots, 'device.png') });
  // The same view from a fresh link (what an alert's link opens).
  const page2 = await browser.newPage();
  await page2.goto(base + '/#device=' + first);
  await waitFor('a linked device view', async () =>
    (await page2.locator('#detail .detail-title').textContent()).includes(first), 5000);
  const inc = (await (await fetch(base + '/v1/incidents')).json()).incidents[0].id;
  await page2.goto(base + '/#incident=' + inc);
  await waitFor('a linked incident view', async () => {
    const t = await page2.locator('#detail').textContent();
    return t.includes('Incident #' + inc) && dropped.every((d) => t.includes(d.id));
  }, 5000);
  // Esc closes the view.
  await page2.keyboard.press('Escape');
  await waitFor('Esc to close the detail view', async () =>
    !(await page2.locator('#detail').isVisible()), 5000);
  // A token in the link is kept for the tab and removed from the address bar.
  await page2.goto(base + '/?token=' + token + '#device=' + first);
  await waitFor('the token taken from the link', async () =>
    !page2.url().includes('token') && (await page2.evaluate(
        () => sessionStorage.getItem('presenced.token'))) === token &&
    (await page2.locator('#s-token').inputValue()) === token, 5000);
  await page2.close();

  // Device search by state and label.
  await page.goto(base + '/');
  await page.locator('#q-state').selectOption('offline');
  await page.locator('#search button').click();
  await waitFor('search for offline devices', async () =>
    (await page.locator('#device-table tbody tr.device').count()) === dropped.length, 5000);
  await page.locator('#q-state').selectOption('');
  await page.locator('#q-label').fill('site=paris');
  await page.locator('#search button').click();
  await waitFor('search by label', async () =>
    (await page.locator('#device-table tbody tr.device').count()) ===
        devices.filter((d) => d.site === 'paris').length, 5000);

  // A silence through the form (the token is needed for writes).
  await page.locator('#s-match').fill('site=berlin,alert=device_offline');
  await page.locator('#s-duration').fill('2h');
  await page.locator('#s-comment').fill('broker upgrade');
  await page.locator('#s-token').fill(token);
  await page.locator('#silence-form button').click();
  await waitFor('the silence in the table', async () =>
    (await page.locator('#silence-table tbody').textContent()).includes('broker upgrade'), 5000);
  const silences = await (await fetch(base + '/v1/silences')).json();
  if (silences.silences.length !== 1 || silences.silences[0].match.site !== 'berlin')
    throw new Error('silence not stored: ' + JSON.stringify(silences));

  // They come back: the receiver gets the RESOLVE, and the panel drops the page; the incident
  // says its page was resolved even while it still waits for stragglers.
  for (const d of dropped)
    pub(mqttPort, `devices/${d.id}/status`,
        JSON.stringify({ state: 'online', site: d.site, firmware: d.firmware }));
  await waitFor('the receiver to get the resolve', async () =>
    received.some((p) => p.action === 'resolve' && p.dedup_key === key), 30000);
  await waitFor('the page gone from "Firing now"', async () =>
    (await page.locator('#firing-table tbody tr.alert').count()) === 0 &&
    await page.locator('#firing-none').isVisible(), 5000);
  await waitFor('the incident shown as resolved', async () =>
    !(await page.locator('#incident-list .incident').first().textContent()).includes('PAGE FIRING'),
    5000);
  if (shots) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });
  }

  if (receiverErrors.length) throw new Error('receiver: ' + receiverErrors.join('; '));
  const foreign = [...requests].filter((u) => !u.startsWith(base));
  if (foreign.length) throw new Error('page fetched from elsewhere: ' + foreign.join(' '));
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  if (presenced.exitCode !== null) throw new Error('presenced exited');
  console.log('dashboard: devices worst first, the drop, the incident with its cohort hint; ' +
              '"Firing now" = the page the receiver got, gone on its resolve; device and ' +
              'incident links; degraded segment; chart axes and marker; search; a silence');
}

try {
  await main();
  await cleanup();
  console.log('1 passed, 0 failed');
  process.exit(0);
} catch (e) {
  console.error('FAILED:', e.message);
  for (const log of ['presenced.log', 'mosquitto.log']) {
    const p = path.join(dir, log);
    if (fs.existsSync(p)) console.error(`--- ${log} (tail)\n` + fs.readFileSync(p, 'utf8').slice(-3000));
  }
  await cleanup();
  console.log('0 passed, 1 failed');
  process.exit(1);
}
