// Browser test of the dashboard (issue 7): a real mosquitto on a free loopback port, a real
// presenced, real devices (mosquitto_pub), Debian's chromium driven by playwright-core.
// Checks that the page loads, lists the devices, and shows a device drop without a reload.
//
//   node dashboard.test.mjs            (env: PRESENCED, SCREENSHOT=path.png, CHROMIUM)
// Exit 0 = passed, 1 = failed, 77 = skipped (chromium or playwright-core missing).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const presencedBin = process.env.PRESENCED || path.resolve(here, '../../../build/presence/app/presenced');
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.SCREENSHOT || '';
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
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
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

  const token = 'dashboard-test-token';
  fs.writeFileSync(path.join(dir, 'presenced.yaml'), [
    'mqtt:', `  uri: tcp://127.0.0.1:${mqttPort}`, '  client_id: presenced-dashboard-test',
    'presence:', '  offline_grace: 1s', '  online_stable_for: 1s',
    '  restart_grace_min: 100ms', '  restart_grace_settle: 100ms', '  restart_grace_max: 1s',
    'http:', `  listen: 127.0.0.1:${httpPort}`, `  token: ${token}`,
    'store:', `  dir: ${path.join(dir, 'store')}`,
    'output:', '  coalesce_interval: 50ms',
    // A small fleet: 5 drops and 20 % of a segment are an incident.
    'alerts:', '  policy:', '    incident_open_floor: 5', '    incident_open_fraction: 0.2', ''].join('\n'));
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
  const online = await page.locator('#count-online').textContent();
  if (online !== String(devices.length)) throw new Error(`online tile shows ${online}`);
  for (const d of devices) {
    const state = await page.locator(`tr.device[data-id="${d.id}"] td.state`).textContent();
    if (state !== 'online') throw new Error(`${d.id} shows ${state}`);
  }
  if (await page.locator('#incident-list .incident').count() !== 0)
    throw new Error('an incident before anything dropped');

  // The six paris devices on firmware 3.9.0 drop (last-will "offline"): the page follows without
  // a reload and shows the incident with its scope and cohort hint.
  const dropped = devices.filter((d) => d.site === 'paris' && d.firmware === '3.9.0');
  for (const d of dropped) pub(mqttPort, `devices/${d.id}/status`, 'offline');
  const first = dropped[0].id;
  await waitFor(`${first} offline on the page`, async () =>
    (await page.locator(`tr.device[data-id="${first}"] td.state`).textContent()) === 'offline',
    15000);
  await waitFor('offline tile = 6', async () =>
    (await page.locator('#count-offline').textContent()) === '6', 5000);
  await waitFor('the incident with its cohort hint', async () => {
    const text = await page.locator('#incident-list .incident').first().textContent();
    return text.includes('site=paris') && text.includes('firmware=3.9.0');
  }, 10000).catch(async (e) => {
    throw new Error(e.message + ': ' + await (await fetch(base + '/v1/incidents')).text());
  });

  // The incident's held devices, on click.
  await page.locator('#incident-list .incident').first().click();
  await waitFor('the held devices of the incident', async () => {
    const text = await page.locator('#incident-list .incident-detail').first().textContent();
    return dropped.every((d) => text.includes(d.id));
  }, 5000);

  // Device search with its state history.
  await page.locator(`tr.device[data-id="${first}"]`).click();
  await waitFor(`state history of ${first}`, async () =>
    (await page.locator('#history tbody tr').count()) >= 3, 5000);
  const history = await page.locator('#history tbody').textContent();
  if (!history.includes('online → suspect') || !history.includes('suspect → offline'))
    throw new Error('history shows: ' + history);
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

  await waitFor('share chart', async () =>
    (await page.locator('#share polyline').count()) === 1, 5000);
  if (screenshot) {
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
  }

  const foreign = requests.filter((u) => !u.startsWith(base));
  if (foreign.length) throw new Error('page fetched from elsewhere: ' + foreign.join(' '));
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  if (presenced.exitCode !== null) throw new Error('presenced exited');
  console.log('dashboard: page loads, lists 55 devices, shows the drop, the incident with its cohort hint, the history, search and a silence');
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
