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

  fs.writeFileSync(path.join(dir, 'presenced.yaml'), [
    'mqtt:', `  uri: tcp://127.0.0.1:${mqttPort}`, '  client_id: presenced-dashboard-test',
    'presence:', '  offline_grace: 1s', '  online_stable_for: 1s',
    '  restart_grace_min: 100ms', '  restart_grace_settle: 100ms', '  restart_grace_max: 1s',
    'http:', `  listen: 127.0.0.1:${httpPort}`,
    'store:', `  dir: ${path.join(dir, 'store')}`,
    'output:', '  coalesce_interval: 50ms', ''].join('\n'));
  const presenced = run(presencedBin, ['--config', path.join(dir, 'presenced.yaml')], 'presenced.log');
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor('presenced /readyz', async () => (await fetch(base + '/readyz')).status === 200,
                10000);
  await waitFor('restart grace to end', async () => {
    const f = await (await fetch(base + '/v1/fleet')).json();
    return !f.restart_grace;
  }, 10000);

  const devices = ['sensor-berlin-1', 'sensor-berlin-2', 'sensor-paris-1', 'sensor-paris-2',
                   'gateway-lyon-1'];
  for (const id of devices) {
    const site = id.split('-')[1];
    pub(mqttPort, `devices/${id}/status`,
        JSON.stringify({ state: 'online', site, firmware: id.endsWith('2') ? '3.9.0' : '3.8.0' }));
  }
  await waitFor('5 devices online in /v1/fleet', async () => {
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
  // Every answer must be a success, except incidents and silences while the alert policy is not
  // running (503 "unavailable", shown in their sections).
  page.on('response', (r) => {
    const url = new URL(r.url());
    const optional = r.status() === 503 && ['/v1/incidents', '/v1/silences'].includes(url.pathname);
    if (r.status() >= 400 && !optional) errors.push(`${r.status()} ${url.pathname}`);
  });
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));

  await page.goto(base + '/');
  await page.waitForSelector('#device-table tbody tr.device', { timeout: 10000 });
  await waitFor('every device in the table', async () =>
    (await page.locator('#device-table tbody tr.device').count()) === devices.length, 10000);
  const online = await page.locator('#count-online').textContent();
  if (online !== String(devices.length)) throw new Error(`online tile shows ${online}`);
  for (const id of devices) {
    const state = await page.locator(`tr.device[data-id="${id}"] td.state`).textContent();
    if (state !== 'online') throw new Error(`${id} shows ${state}`);
  }

  // A device drops (graceful offline): the page follows without a reload.
  pub(mqttPort, 'devices/sensor-paris-2/status', 'offline');
  await waitFor('sensor-paris-2 offline on the page', async () =>
    (await page.locator('tr.device[data-id="sensor-paris-2"] td.state').textContent()) === 'offline',
    15000);
  await waitFor('offline tile = 1', async () =>
    (await page.locator('#count-offline').textContent()) === '1', 5000);

  // Device search with its state history.
  await page.locator('tr.device[data-id="sensor-paris-2"]').click();
  await waitFor('state history of sensor-paris-2', async () =>
    (await page.locator('#history tbody tr').count()) >= 2, 5000);
  const history = await page.locator('#history tbody').textContent();
  if (!history.includes('online → suspect') || !history.includes('suspect → offline'))
    throw new Error('history shows: ' + history);
  await page.locator('#q-state').selectOption('offline');
  await page.locator('#search button').click();
  await waitFor('search for offline devices', async () =>
    (await page.locator('#device-table tbody tr.device').count()) === 1, 5000);

  // Let the share chart collect a few samples, then take the picture.
  await waitFor('share chart', async () =>
    (await page.locator('#share polyline').count()) === 1, 5000);
  await page.locator('#q-state').selectOption('');
  await page.locator('#search button').click();
  await waitFor('full table again', async () =>
    (await page.locator('#device-table tbody tr.device').count()) === devices.length, 5000);
  if (screenshot) {
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
  }

  const foreign = requests.filter((u) => !u.startsWith(base));
  if (foreign.length) throw new Error('page fetched from elsewhere: ' + foreign.join(' '));
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  if (presenced.exitCode !== null) throw new Error('presenced exited');
  console.log('dashboard: page loads, lists 5 devices, shows the drop and the history');
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
