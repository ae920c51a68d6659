// The admin page in a real browser: headless Debian chromium driven by
// playwright-core, against the real binary with its demo data.
//
//   KENNEL_BIN=build/kennel node tests/browser/admin.test.mjs
//   (or: cd tests/browser && KENNEL_BIN=... node --test)
//
// Environment: KENNEL_BIN (required), KENNEL_SCREENSHOTS (where the
// screenshots go; default a temp dir), CHROMIUM (default /usr/bin/chromium),
// KENNEL_TEST_WEB_DIR (optional: serve the page from this directory with
// --web-dir, so edits to web/ need no rebuild).
// The steps depend on each other and run in order; after the first failure
// the rest are skipped. The server and the browser are always stopped, the
// server by its PID. Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const KENNEL_BIN = process.env.KENNEL_BIN || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.KENNEL_SCREENSHOTS || path.join(os.tmpdir(), 'kennel-screenshots');
const WEB_DIR = process.env.KENNEL_TEST_WEB_DIR || '';
const PASSWORD = 'browser-test-password';
const WAIT = 15_000;          // a normal UI wait
const TRAIN_WAIT = 180_000;   // a training job, start to finish

let chromium;
let AXE_SOURCE;  // axe-core, run inside the page by the accessibility step
try {
  ({ chromium } = await import(path.join(here, 'node_modules', 'playwright-core', 'index.mjs')));
  AXE_SOURCE = fs.readFileSync(path.join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
} catch (e) {
  console.error(`playwright-core or axe-core is not installed in ${here}: run scripts/web-deps (npm ci there). (${e.message})`);
  process.exit(1);
}
if (!KENNEL_BIN || !fs.existsSync(KENNEL_BIN)) {
  console.error('KENNEL_BIN must name the kennel binary');
  process.exit(1);
}
if (!fs.existsSync(CHROMIUM)) {
  console.error(`no chromium at ${CHROMIUM} (Debian package chromium; scripts/deps installs it)`);
  process.exit(1);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kennel-browser-'));
fs.mkdirSync(SHOTS, { recursive: true });
let server = null;      // {proc, port, base, stderr}
let context = null;     // playwright persistent context (its own empty profile)
let page = null;
const pageErrors = [];  // uncaught page errors and CSP violations

// ---- the server -------------------------------------------------------------

function startServer() {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KENNEL_')));
    env.KENNEL_ADMIN_PASSWORD = PASSWORD;
    const errPath = path.join(tmp, 'kennel.stderr.log');
    const errFd = fs.openSync(errPath, 'w');
    const args = ['serve', '--demo', '--host', '127.0.0.1', '--port', '0', '--db', path.join(tmp, 'kennel.db')];
    // While developing the page: serve web/ from disk instead of the binary.
    if (WEB_DIR) args.push('--web-dir', WEB_DIR);
    const proc = spawn(KENNEL_BIN, args,
      { env, cwd: tmp, stdio: ['ignore', 'pipe', errFd] });
    fs.closeSync(errFd);
    const s = { proc, port: null, base: null, stderr: () => fs.readFileSync(errPath, 'utf8'), exited: null };
    server = s;
    const timer = setTimeout(() => reject(new Error(`kennel did not print its port within 20 s:\n${s.stderr()}`)), 20_000);
    let buf = '';
    proc.stdout.on('data', (chunk) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        const m = line.match(/^kennel: listening on 127\.0\.0\.1:(\d+)$/);
        if (m && !s.port) {
          s.port = Number(m[1]);
          s.base = `http://127.0.0.1:${s.port}`;
          clearTimeout(timer);
          resolve(s);
        }
      }
    });
    proc.on('exit', (code, sig) => {
      s.exited = code ?? sig;
      if (!s.port) { clearTimeout(timer); reject(new Error(`kennel exited (${code ?? sig}) before listening:\n${s.stderr()}`)); }
    });
  });
}

async function stopServer() {
  if (!server || server.exited !== null) return;
  const { proc } = server;
  const exited = new Promise((r) => proc.once('exit', r));
  try { process.kill(proc.pid, 'SIGTERM'); } catch (e) { return; }
  const t = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL'); } catch (e) { /* gone */ } }, 15_000);
  await exited;
  clearTimeout(t);
}

async function waitFor(what, fn, timeoutMs, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

// Direct HTTP from the test (not the browser), with Basic auth when asked.
async function http(method, p, { auth, body, headers = {} } = {}) {
  const h = { ...headers };
  if (auth === 'basic') h.Authorization = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
  else if (auth) h.Authorization = `Bearer ${auth}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(server.base + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

// A route stub that edits a real answer's JSON. An error in it while it is
// in place (the answer's shape changed) fails the step with that error, not
// with a timeout; one from a request still in flight when the stub was
// removed is ignored.
function routeStub(edit) {
  const stub = { active: true, errors: [] };
  stub.handler = async (r) => {
    try {
      const res = await r.fetch();
      const j = await res.json();
      edit(j);
      // The real answer may have come gzipped (16 KiB or more): its
      // Content-Encoding and length do not describe the edited JSON.
      const headers = { ...res.headers() };
      delete headers['content-encoding'];
      delete headers['content-length'];
      await r.fulfill({ status: res.status(), headers, json: j });
    } catch (e) {
      if (!stub.active) return;
      stub.errors.push(e);
      await r.abort().catch(() => {});
    }
  };
  // Removed: inactive first, so that a request in flight while the route
  // goes (Playwright may hand it on, and then its fulfill fails with "Route
  // is already handled") is not counted as the stub's failure.
  stub.unroute = async (pattern) => {
    stub.active = false;
    await page.unroute(pattern, stub.handler);
  };
  stub.finish = () => {
    stub.active = false;
    if (stub.errors.length) throw stub.errors[0];
  };
  return stub;
}

// ---- the browser --------------------------------------------------------------

async function shot(name) {
  // Transient messages off; scrolled to the top (a sticky header otherwise
  // lands mid-page in a full-page screenshot).
  await page.evaluate(() => { document.querySelector('#flash').replaceChildren(); window.scrollTo(0, 0); });
  await page.waitForTimeout(300); // let the last render settle
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function go(hash) {
  await page.evaluate((hsh) => { location.hash = hsh; }, hash);
}

const visible = (locator, timeout = WAIT) => locator.first().waitFor({ state: 'visible', timeout });

// What the page sees when it calls the API itself (with its cookie).
const pageFetch = (p) => page.evaluate(async (u) => (await fetch(u, { credentials: 'same-origin' })).status, p);

// Fills and confirms the reason dialog.
async function confirmDialog(reason) {
  const dlg = page.locator('#dialog');
  await visible(dlg);
  if (reason !== undefined) await page.fill('#dialog-reason', reason);
  await page.click('#dialog-ok');
  await dlg.waitFor({ state: 'hidden', timeout: WAIT });
}

async function versionsOf(model) {
  const r = await http('GET', `/v1/models/${model}/versions`, { auth: 'basic' });
  assert.equal(r.status, 200, r.text);
  return r.json.versions;
}

// ---- steps ----------------------------------------------------------------------

let failed = false;
function step(name, fn, timeout = 60_000) {
  test(name, { timeout }, async (t) => {
    if (failed) { t.skip('an earlier step failed'); return; }
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      if (page) {
        try { await page.screenshot({ path: path.join(SHOTS, `failure-${name.replace(/\W+/g, '-')}.png`), fullPage: true }); } catch (e2) { /* ignore */ }
      }
      if (server) e.message += `\n--- kennel stderr (tail) ---\n${server.stderr().split('\n').slice(-30).join('\n')}`;
      throw e;
    }
  });
}

before(async () => {
  const started = Date.now();
  await startServer();
  await waitFor('/readyz', async () => (await http('GET', '/readyz')).status === 200, 30_000);
  context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (m.type() === 'error' && !/Failed to load resource/.test(text)) pageErrors.push(`console: ${text}`);
    if (/Content Security Policy/i.test(text)) pageErrors.push(`csp: ${text}`);
  });
  console.log(`# kennel on ${server.base}, browser up in ${Date.now() - started} ms; screenshots in ${SHOTS}`);
});

after(async () => {
  try { if (context) await context.close(); } catch (e) { /* ignore */ }
  await stopServer();
  fs.rmSync(tmp, { recursive: true, force: true });
});

step('without a session the page shows the sign-in form and data calls are refused', async () => {
  const r = await page.goto(server.base + '/', { waitUntil: 'domcontentloaded' });
  assert.equal(r.status(), 200);
  assert.match(r.headers()['content-security-policy'] || '', /default-src 'self'/);
  await visible(page.locator('#signin-form'));
  assert.equal(await page.locator('#shell').isVisible(), false);
  assert.equal(await page.title(), 'Sign in · Kennel');
  // The form is the page's main landmark, the only one shown.
  assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll('main')].filter((m) => !m.closest('[hidden]')).map((m) => m.id)), ['signin']);
  assert.equal(await pageFetch('/v1/models'), 401);
  assert.equal(await pageFetch('/v1/streams'), 401);
  assert.equal((await http('GET', '/v1/models')).status, 401);
  assert.equal((await http('GET', '/v1/keys')).status, 401);
});

step('a wrong password shows an error', async () => {
  await page.fill('#signin-user', 'admin');
  await page.fill('#signin-password', 'not-the-password');
  await page.click('#signin-submit');
  await visible(page.locator('#signin-message .alert.error'));
  assert.match(await page.textContent('#signin-message'), /Wrong user name or password/);
  assert.equal(await page.locator('#shell').isVisible(), false);
});

step('signing in shows the overview with live components and rates', async () => {
  await page.fill('#signin-password', PASSWORD);
  await page.click('#signin-submit');
  await visible(page.locator('#shell'));
  assert.equal(await page.textContent('#who-user'), 'admin');
  await visible(page.locator('h1', { hasText: 'Overview' }));
  assert.equal(await page.title(), 'Overview · Kennel', 'the tab names the page');
  for (const c of ['writer', 'trainer', 'scheduler', 'supervisor', 'serving', 'http']) {
    await visible(page.locator(`.component[data-component="${c}"]`));
  }
  const writer = await page.textContent('.component[data-component="writer"]');
  assert.match(writer, /commits since start/, 'process counters say they restart with Kennel');
  assert.match(await page.textContent('.component[data-component="trainer"]'), /jobs run since start/);
  assert.match(await page.textContent('.component[data-component="http"]'), /parked connections/);
  // As rendered (the heading is capitalised by the stylesheet): not "Http".
  assert.match(await page.innerText('.component[data-component="http"] h2'), /^HTTP\b/);
  assert.match(writer, /queue limit/);
  for (const label of ['Facts per second', 'Predictions per second', 'p50 latency', 'p99 latency', 'Fallback share']) {
    await visible(page.locator('.tile .label', { hasText: label }));
  }
  // Live: the uptime in the heading changes without a reload.
  const before1 = await page.textContent('.page-head .sub');
  await waitFor('the overview to update', async () => (await page.textContent('.page-head .sub')) !== before1, 8_000);
  await visible(page.locator('.card a', { hasText: 'likes' }));
  await shot('overview-1280');
});

step('streams: counts, event times and the newest facts', async () => {
  await page.click('#nav a[data-view="streams"]');
  await visible(page.locator('h1', { hasText: 'Streams' }));
  const row = page.locator('tr', { has: page.locator('a', { hasText: /^posts$/ }) });
  await visible(row);
  assert.match(await row.first().textContent(), /2,000/);
  await visible(page.locator('tr', { has: page.locator('a', { hasText: /^likes$/ }) }));
  await row.first().locator('a', { hasText: 'newest facts' }).click();
  await visible(page.locator('h2', { hasText: 'Newest facts in posts' }));
  const factsText = await page.locator('.card', { has: page.locator('h2', { hasText: 'Newest facts in posts' }) }).textContent();
  assert.match(factsText, /post-2000/, 'the newest post is post-2000');
  assert.match(factsText, /breed/);
  assert.equal(await page.title(), 'posts · Streams · Kennel');
  // Times are local and say in which zone (the server writes UTC); the
  // tooltip keeps the exact instant as the API gave it.
  const times = await page.locator('.card', { has: page.locator('h2', { hasText: 'Newest facts in posts' }) }).locator('time').evaluateAll((els) => els.map((t) => ({ text: t.textContent, title: t.title, dt: t.getAttribute('datetime') })));
  assert.ok(times.length > 0);
  for (const t of times) {
    assert.match(t.text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (UTC|GMT[+-]\d{1,2}(:\d\d)?|[A-Z]{2,5})$/, JSON.stringify(t));
    assert.equal(t.title, t.dt, 'the tooltip is the ISO time');
  }
  await shot('streams-1280');
});

step('models: the demo model "likes" with a trained version', async () => {
  await page.click('#nav a[data-view="models"]');
  await visible(page.locator('h1', { hasText: 'Models' }));
  await visible(page.locator('table a', { hasText: 'likes' }));
  // The demo trains at once: wait (bounded) for version 1.
  await waitFor('the demo\'s first version', async () => (await versionsOf('likes')).length >= 1, TRAIN_WAIT, 1000);
  await shot('models-1280');
  await page.click('table a:has-text("likes")');
  await visible(page.locator('h1', { hasText: 'likes' }));
  await visible(page.locator('tr[data-version="1"]'));
  assert.equal(await page.title(), 'likes · Models · Kennel');
  assert.match(await page.textContent('tr[data-version="1"]'), /live/);
  // The live version's status says live (not the gate's "candidate").
  await waitFor('v1 live in the status column', async () =>
    (await page.textContent('tr[data-version="1"] td:nth-child(2) .badge')) === 'live', WAIT);
  // Only one version has ever been live: nothing to roll back to, and the button says why.
  const rb = page.locator('button[data-action="rollback"]');
  assert.equal(await rb.isDisabled(), true, 'roll back is disabled with no earlier live version');
  assert.match(await rb.getAttribute('title'), /No earlier enabled live version/);
  await visible(page.locator('svg.chart'));
  assert.match(await page.textContent('svg.chart'), /rmse by version/);
  await visible(page.locator('h2', { hasText: 'Compare versions' }));
  await visible(page.locator('#definition'));
  assert.match(await page.inputValue('#definition'), /"features_from": "posts"/);
}, TRAIN_WAIT + 60_000);

step('try a prediction: the newest post as the body, the answer shown, refusals named', async () => {
  await visible(page.locator('#try-body'));
  await waitFor('the body prefilled from the posts stream', async () => /"features"/.test(await page.inputValue('#try-body')), WAIT);
  const body = JSON.parse(await page.inputValue('#try-body'));
  assert.ok(body.entity && Object.keys(body.features).length > 0, JSON.stringify(body));
  await page.click('button[data-action="try-predict"]');
  const answer = page.locator('#try-answer');
  await visible(answer.locator('dl.kv'));
  const text = await answer.textContent();
  assert.match(text, /answered byv\d+ \(live\)/);
  assert.match(text, /fallbackno/);
  assert.match(text, /prediction id[0-9a-f]{32}/);
  // The same prediction is in the log.
  const id = text.match(/prediction id([0-9a-f]{32})/)[1];
  await waitFor('the tried prediction in the log', async () => {
    const r = await http('GET', `/v1/models/likes/predictions?id=${id}`, { auth: 'basic' });
    return r.status === 200 && r.json.predictions.length === 1;
  }, WAIT);
  // Explained (the box is ticked): each field the version reads, with a
  // bar; the demo's six fields are sampled, each share with its margin.
  const fields = ['breed', 'caption', 'has_photo', 'hashtags', 'hour', 'length'];
  await visible(answer.locator('.explanation[data-explanation="sampled"]'));
  const shown = await answer.locator('table.explain tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.field));
  assert.deepEqual(shown.slice().sort(), fields);
  assert.equal(await answer.locator('table.explain .contrib-bar').count(), 6);
  assert.match(await answer.textContent(), /starts from [0-9.,-]+, the mean answer of v\d+ over 100 training rows/);
  assert.match(await answer.locator('table.explain tbody tr').first().textContent(), /[+-][0-9.]+ ± [0-9.]+/);
  // The bars follow the shares: the largest share's bar is the widest.
  const widths = await answer.locator('table.explain .contrib-bar').evaluateAll((bars) => bars.map((b) => b.getBoundingClientRect().width));
  assert.equal(Math.max(...widths), widths[0], JSON.stringify(widths));
  // Each bar's length is its share's, against the largest.
  const sharesShown = await answer.locator('table.explain tbody td.num').evaluateAll((cells) => cells.map((c) => Math.abs(parseFloat(c.textContent.replace(/,/g, '')))));
  assert.ok(widths[0] > 0, JSON.stringify(widths));
  widths.forEach((w, i) => assert.ok(Math.abs(w / widths[0] - sharesShown[i] / sharesShown[0]) < 0.02,
    `bar ${i}: ${JSON.stringify(widths)} for shares ${JSON.stringify(sharesShown)}`));
  await shot('model-explain-1280');
  // Unticked: no explanation asked for, none shown.
  await page.uncheck('#try-explain');
  await page.click('button[data-action="try-predict"]');
  await waitFor('the answer without an explanation', async () => (await answer.locator('.explanation').count()) === 0, WAIT);
  await visible(answer.locator('dl.kv'));
  await page.check('#try-explain');
  // Stored features: the body names the entity and one field; the rest
  // come from its newest fact, and the answer says which.
  await page.check('#try-stored');
  await page.fill('#try-body', JSON.stringify({ entity: body.entity, features: { hour: 9 } }));
  await page.click('button[data-action="try-predict"]');
  await visible(answer.locator('dd[data-stored]'));
  const storedText = await answer.locator('dd[data-stored]').textContent();
  assert.match(storedText, /breed, caption, has_photo, hashtags, length from fact \d+ of "posts"/);
  assert.ok(!/imputed/.test(await answer.locator('dl.kv').textContent()), 'nothing imputed');
  const served = (await http('POST', '/v1/models/likes/predict', { auth: 'basic', body: { features: Object.assign({}, body.features, { hour: 9 }) } })).json;
  assert.match(await answer.locator('dl.kv').textContent(), new RegExp(`prediction${served.prediction.toLocaleString('en-US', { maximumFractionDigits: 4 }).replace(/[.,]/g, '\\$&')}`));
  // An entity without facts: said.
  await page.fill('#try-body', JSON.stringify({ entity: 'no-such-post', features: {} }));
  await page.click('button[data-action="try-predict"]');
  await visible(answer.locator('dd[data-stored="none"]', { hasText: 'no fact of this entity in "posts"' }));
  await page.uncheck('#try-stored');
  // A wrong type: the server's 400, naming the field.
  await page.fill('#try-body', '{"features": {"length": "long"}}');
  await page.click('button[data-action="try-predict"]');
  await visible(answer.locator('.alert.error', { hasText: 'features.length' }));
  await shot('model-try-1280');
});

step('importance: the live version\'s fields by how much the metric suffers without them', async () => {
  const card = page.locator('#importance');
  await visible(card.locator('p', { hasText: /v1 \(live\): rmse [0-9.]+ on \d+ holdout rows/ }));
  const v = (await http('GET', '/v1/models/likes/versions/1', { auth: 'basic' })).json;
  const fields = v.features.importance.fields;
  assert.deepEqual(fields.map((f) => f.field).sort(), ['breed', 'caption', 'has_photo', 'hashtags', 'hour', 'length']);
  // Rows in the server's order (largest drop first), with a bar each.
  const shown = await card.locator('tr[data-field]').evaluateAll((rows) => rows.map((r) => r.dataset.field));
  assert.deepEqual(shown, fields.map((f) => f.field));
  assert.equal(await card.locator('tr[data-field] meter').count(), fields.length);
  assert.ok(fields[0].drop > 0, JSON.stringify(fields));
});

step('feature drift: every field against training, a moved field flagged', async () => {
  const card = page.locator('#feature-drift');
  await visible(card.locator('h3', { hasText: /v\d+ \(live\)/ }));
  for (const f of ['breed', 'has_photo', 'hashtags', 'hour', 'length']) await visible(card.locator(`tr[data-field="${f}"]`));
  // 250 posts far longer than any the model was trained on; the rest as usual.
  const breeds = ['corgi', 'pug', 'husky', 'beagle', 'poodle'];
  const instances = Array.from({ length: 250 }, (_, i) => ({
    entity: `drift${i}`,
    features: { length: 50_000 + i, hashtags: i % 5, breed: breeds[i % 5], hour: i % 24, has_photo: i % 3 !== 0 },
  }));
  for (let i = 0; i < instances.length; i += 50) {
    // A deadline past any stall of a busy machine: a deadline fallback is
    // not the live version's answer, which the counts below compare.
    const r = await http('POST', '/v1/models/likes/predict', { auth: 'basic', body: { instances: instances.slice(i, i + 50), deadline_ms: 5000 } });
    assert.equal(r.status, 200, r.text);
  }
  const row = card.locator('tr[data-field="length"]');
  await visible(row.locator('.badge', { hasText: 'drifted' }));
  // The largest move: the top bin, nearly every served post against a tenth in training.
  assert.match(await row.textContent(), /inf\): \d+(\.\d)? % → (9\d(\.\d)?|100) %/);
  await visible(card.locator('h3 .badge', { hasText: 'drifted' }));
  // The model's answers have their own row, against its answers on the holdout.
  assert.match(await card.locator('tr[data-output="prediction"]').textContent(), /the answers\d+(\.\d+)?/);
  // The API behind it agrees.
  const d = (await http('GET', '/v1/models/likes/drift', { auth: 'basic' })).json;
  const live = d.versions.find((v) => v.role === 'live');
  assert.equal(live.window.worst_field, 'length', JSON.stringify(live.window).slice(0, 500));
  assert.equal(live.window.prediction.answers, live.window.requests, JSON.stringify(live.window.prediction).slice(0, 500));
  await shot('model-drift-1280');
  // The overview flags it too, naming the field.
  await page.click('#nav a[data-view="overview"]');
  await visible(page.locator('tr[data-model="likes"] td.drift .badge', { hasText: 'drifted' }));
  assert.match(await page.textContent('tr[data-model="likes"] td.drift'), /drifted length/);
  await page.click('#nav a[data-view="models"]');
  await page.click('table a:has-text("likes")');
  await visible(page.locator('#feature-drift'));
});

step('train now: the job runs with progress and finishes', async () => {
  const jobsBefore = (await http('GET', '/v1/jobs', { auth: 'basic' })).json.jobs.length;
  await page.click('button[data-action="train"]');
  await confirmDialog('browser test: retrain on the same facts');
  await visible(page.locator('#flash .alert.success', { hasText: /training job \d+|already queued/ }));
  const jobId = Number((await page.textContent('#flash .alert.success')).match(/job (\d+)/)[1]);
  assert.ok(jobId > 0);
  // The model page shows it while it trains; the jobs page follows it live.
  await page.click('#nav a[data-view="jobs"]');
  await visible(page.locator('h1', { hasText: 'Jobs' }));
  await visible(page.locator(`tr[data-job="${jobId}"]`));
  // The search runs for its 8 s budget: the live progress bar shows meanwhile.
  await visible(page.locator(`tr[data-job="${jobId}"] progress`), 20_000);
  // Keyboard focus on the running job's Cancel survives the refreshes (its
  // list is drawn anew every second while a job runs): it fell to <body>.
  await page.locator(`tr[data-job="${jobId}"] button[data-action="cancel"]`).focus();
  await page.waitForTimeout(2500);
  const onCancel = await focused();
  if (/running/.test(await page.locator(`tr[data-job="${jobId}"]`).first().textContent())) {
    assert.equal(onCancel.label, `Cancel job ${jobId}`);
  }
  await page.locator('h1').first().focus();  // not to be pressed by a later key
  await shot('jobs-1280');
  await waitFor(`job ${jobId} to finish on the page`, async () => {
    const t = await page.locator(`tr[data-job="${jobId}"]`).first().textContent();
    return /succeeded|failed|timed out|cancelled/.test(t) ? t : null;
  }, TRAIN_WAIT, 500);
  assert.match(await page.locator(`tr[data-job="${jobId}"]`).first().textContent(), /succeeded/);
  assert.ok((await http('GET', '/v1/jobs', { auth: 'basic' })).json.jobs.length > jobsBefore);
  // The job's own page: its log.
  await page.click(`tr[data-job="${jobId}"] a:has-text("#${jobId}")`);
  await visible(page.locator('#job-log'));
  assert.match(await page.textContent('#job-log'), /gate/);
  assert.equal(await page.title(), `Job ${jobId} · Jobs · Kennel`);
  await shot('job-1280');
}, TRAIN_WAIT + 60_000);

step('disable and enable a version', async () => {
  const versions = await versionsOf('likes');
  const notLive = versions.find((v) => !(v.aliases || []).includes('live'));
  await go('#/models/likes');
  const row = `tr[data-version="${notLive.version}"]`;
  await visible(page.locator(`${row} button[data-action="disable"]`));
  // The comparison's second picker moved by the arrow keys onto the first
  // one's version swaps the two (it was reset without a word), and keeps
  // focus while the comparison is drawn anew.
  const first = await page.inputValue('select[data-compare="0"]');
  const second = await page.inputValue('select[data-compare="1"]');
  const picker = page.locator('select[data-compare="1"]');
  await picker.focus();
  const options = await picker.evaluate((el) => [...el.options].map((o) => o.value));
  // One step toward the first picker's version (next to it on the list).
  await page.keyboard.press(options.indexOf(first) < options.indexOf(second) ? 'ArrowUp' : 'ArrowDown');
  await waitFor('the versions swapped', async () =>
    (await page.inputValue('select[data-compare="0"]')) === second &&
    (await page.inputValue('select[data-compare="1"]')) === first, WAIT);
  assert.equal((await focused()).label, 'Second version');
  // How each version's holdout was chosen, and the words under the table.
  const splitRow = page.locator('table.compare tr', { hasText: 'split rule' });
  assert.match(await splitRow.textContent(), /fmix64\(fnv1a64\(entity\)\) \/ 2\^64 < 0\.\d+/);
  await visible(page.locator('p', { hasText: 'The holdout is chosen by the split rule (a hash of the entity, or the newest labels by time)' }));
  await page.click(`${row} button[data-action="disable"]`);
  await confirmDialog('browser test: disable');
  await visible(page.locator('#flash .alert.success', { hasText: `Disabled likes v${notLive.version}` }));
  await waitFor('the disabled badge', async () => /disabled/.test(await page.textContent(row)), WAIT);
  // Why Promote is off is in its name, not only in a tooltip no keyboard
  // reaches.
  assert.equal(await page.getAttribute(`${row} button[data-action="promote"]`, 'aria-label'),
    `Promote v${notLive.version} (Enable it first)`);
  // While the action's request is on its way the dialog waits with it (a
  // failure is said there, the reason kept), its button off; then focus is
  // back on the row, on the button that took Enable's place.
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route('**/v1/models/likes/versions/*/enable', async (rt) => { await held; await rt.continue(); });
  try {
    await page.click(`${row} button[data-action="enable"]`);
    await visible(page.locator('#dialog'));
    await page.fill('#dialog-reason', 'browser test: enable again');
    await page.click('#dialog-ok');
    await page.waitForTimeout(300);
    assert.equal(await page.locator('#dialog').isVisible(), true, 'the dialog waits for the answer');
    assert.equal(await page.isDisabled('#dialog-ok'), true, 'not sent twice');
    release();
    await page.locator('#dialog').waitFor({ state: 'hidden', timeout: WAIT });
    await visible(page.locator('#flash .alert.success', { hasText: `Enabled likes v${notLive.version}` }));
    await visible(page.locator(`${row} button[data-action="disable"]`));
    await waitFor('focus back on the row', async () => (await focused()).label === `Disable v${notLive.version}`, WAIT);
    // Someone else disables it while the dialog is open: the page says
    // nothing changed (it claimed the change as its own).
    await page.click(`${row} button[data-action="disable"]`);
    await visible(page.locator('#dialog'));
    const first = await http('POST', `/v1/models/likes/versions/${notLive.version}/disable`, { auth: 'basic', body: { reason: 'browser test: someone else' } });
    assert.equal(first.status, 200, first.text);
    await confirmDialog('browser test: disable, late');
    await visible(page.locator('#flash .alert.success', { hasText: `likes v${notLive.version} was disabled already (by someone else meanwhile?): nothing changed` }));
    const back = await http('POST', `/v1/models/likes/versions/${notLive.version}/enable`, { auth: 'basic', body: { reason: 'browser test: back' } });
    assert.equal(back.status, 200, back.text);
    await visible(page.locator(`${row} button[data-action="disable"]`));
  } finally {
    release();
    await page.unroute('**/v1/models/likes/versions/*/enable');
  }
});

step('promote a version, roll it back, and see who and why', async () => {
  let versions = await versionsOf('likes');
  assert.ok(versions.length >= 2, 'two versions after the retrain');
  // The retrain publishes its version only when it beats live on the
  // holdout, which the demo's data decides either way. Promoting a version
  // live has already been on goes back along live's path (nothing to roll
  // back to after it), so when the retrain was published, roll it back
  // first: the promotion below then goes forward, to a version off the path.
  const newest = Math.max(...versions.map((v) => v.version));
  if ((versions.find((v) => v.version === newest).aliases || []).includes('live')) {
    const undo = await http('POST', '/v1/models/likes/rollback', { auth: 'basic', body: { reason: 'browser test: set up' } });
    assert.equal(undo.status, 200, undo.text);
    versions = await versionsOf('likes');
  }
  const live = versions.find((v) => (v.aliases || []).includes('live'));
  assert.ok(live, 'a live version');
  assert.notEqual(live.version, newest, 'the newest version is off live\'s path');
  const other = versions.find((v) => v.version === newest);
  await go('#/models/likes');
  await visible(page.locator(`tr[data-version="${other.version}"]`));
  await page.click(`tr[data-version="${other.version}"] button[data-action="promote"]`);
  // The dialog says what argues against it: the gate's rejection, a worse
  // holdout metric than live's.
  await visible(page.locator('#dialog'));
  const promoteText = await page.textContent('#dialog-text');
  assert.match(promoteText, new RegExp(`Moves the alias live to v${other.version} \\(from v${live.version}\\)`));
  if (other.status === 'rejected') assert.match(promoteText, /The gate rejected it: /);
  else assert.doesNotMatch(promoteText, /The gate rejected it/);
  if (other.metrics.rmse > live.metrics.rmse) assert.match(promoteText, new RegExp(`is worse than live v${live.version}'s`));
  else assert.doesNotMatch(promoteText, /is worse than live/);
  await confirmDialog('browser test: promote by hand');
  await visible(page.locator('#flash .alert.success', { hasText: `Promoted likes v${other.version} to live` }));
  await waitFor('the new live version in the table', async () => /live/.test(await page.textContent(`tr[data-version="${other.version}"]`)), WAIT);
  await visible(page.locator('.page-head .badge', { hasText: `live → v${other.version}` }));
  await shot('model-1280');

  assert.equal(await page.getAttribute('button[data-action="rollback"]', 'title'), `Moves live back to v${live.version}`);
  await page.click('button[data-action="rollback"]');
  await visible(page.locator('#dialog'));
  assert.match(await page.textContent('#dialog-text'), new RegExp(`from v${other.version} back to v${live.version}`));
  assert.match(await page.textContent('#dialog-ok'), new RegExp(`Roll back to v${live.version}`));
  await confirmDialog('browser test: roll back');
  await visible(page.locator('#flash .alert.success', { hasText: `live moved from v${other.version} to v${live.version}` }));
  await visible(page.locator('.page-head .badge', { hasText: `live → v${live.version}` }));
  // A version rolled back from is off the path live came by: nothing is
  // further back, as the server counts (it answers 409), and the button says so.
  await waitFor('roll back disabled', async () => page.isDisabled('button[data-action="rollback"]'), WAIT);
  assert.equal(await page.getAttribute('button[data-action="rollback"]', 'title'), 'No earlier enabled live version to roll back to');
  const again = await http('POST', '/v1/models/likes/rollback', { auth: 'basic', body: { reason: 'browser test: a second rollback' } });
  assert.equal(again.status, 409, again.text);

  await page.click('#nav a[data-view="deployments"]');
  await visible(page.locator('h1', { hasText: 'Deployments' }));
  const history = page.locator('table.history');
  await visible(history);
  await waitFor('the history rows', async () => {
    const t = await history.textContent();
    return /rollback: browser test: roll back/.test(t) && /browser test: promote by hand/.test(t);
  }, WAIT);
  const rows = await history.locator('tbody tr').allTextContents();
  assert.match(rows[0], new RegExp(`v${other.version} → v${live.version}`));
  assert.match(rows[0], /admin/);
  assert.match(rows[1], new RegExp(`→ v${other.version}`));
  assert.match(rows[1], /admin/);
  const events = page.locator('.card', { has: page.locator('h2', { hasText: 'Version events' }) });
  assert.match(await events.textContent(), /browser test: disable/);
  assert.match(await events.textContent(), /browser test: enable again/);
  await visible(page.locator('h2', { hasText: 'Experiments' }));
  // The supervision policy in a sentence (the demo model keeps the defaults).
  const bounds = page.locator('dd.supervision-policy');
  await visible(bounds);
  assert.equal(await bounds.textContent(),
    'error rate over 20 %, deadline misses over 20 % or fallbacks over 50 % in 1 min 0 s (once 20 requests); no live-metric bound');
  await shot('deployments-1280');
});

step('a disabled live version: the page says so and which version answers instead', async () => {
  const versions = await versionsOf('likes');
  // After the promote and the roll back, the other version is off live's
  // path (a version rolled back from is no fallback). Promoted again, it is
  // live with the first version behind it, which answers while it is disabled.
  const before = versions.find((v) => (v.aliases || []).includes('live'));
  const live = versions.find((v) => v.version !== before.version);
  const moved = await http('PUT', '/v1/models/likes/aliases/live', { auth: 'basic', body: { version: live.version, reason: 'browser test: promote again' } });
  assert.ok(moved.status < 300, moved.text);
  await go('#/models/likes');
  const row = `tr[data-version="${live.version}"]`;
  await visible(page.locator(`${row} button[data-action="disable"]`));
  assert.equal(await page.locator('#serving-notice').count(), 0, 'no warning while live serves');
  assert.equal(await page.getAttribute(`${row} button[data-action="disable"]`, 'aria-label'), `Disable v${live.version}`);
  await page.click(`${row} button[data-action="disable"]`);
  // The dialog says what answers instead.
  await visible(page.locator('#dialog'));
  assert.match(await page.textContent('#dialog-text'), new RegExp(`It is live: v${before.version}, the earlier live version, answers in its place`));
  await confirmDialog('browser test: disable the live version');
  const notice = page.locator('#serving-notice');
  await visible(notice);
  // Keyboard focus comes back to the row's button, now Enable (it fell to
  // <body> when the refresh drew the row anew).
  await waitFor('focus back on the row', async () => page.evaluate((v) => {
    const el = document.activeElement;
    return !!el && el.dataset.action === 'enable' && el.closest('tr') && el.closest('tr').dataset.version === String(v);
  }, live.version), WAIT);
  // The ring a keyboard user sees on the next control stands out: 3:1
  // against white at least (WCAG 2.2, 1.4.11).
  await page.keyboard.press('Tab');
  await page.keyboard.press('Shift+Tab');  // back onto Enable, by keyboard
  const ring = await page.evaluate(() => {
    const st = getComputedStyle(document.activeElement);
    return { action: document.activeElement.dataset.action, style: st.outlineStyle, color: st.outlineColor };
  });
  assert.equal(ring.action, 'enable');
  assert.notEqual(ring.style, 'none', 'a focused control shows a ring');
  const lum = (c) => {
    const [r, g, b] = c.match(/\d+(\.\d+)?/g).slice(0, 3).map((v) => {
      const x = Number(v) / 255;
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  assert.ok(1.05 / (lum(ring.color) + 0.05) >= 3, `focus ring ${ring.color} has under 3:1 against white`);
  assert.match(await notice.textContent(), new RegExp(`Live v${live.version} is disabled: v${before.version} answers instead`));
  // What /v1/serving says, the page says.
  const sv = (await http('GET', '/v1/serving', { auth: 'basic' })).json.models.find((m) => m.model === 'likes');
  assert.equal(sv.problem, 'version_disabled');
  assert.equal(sv.versions.find((v) => v.role === 'previous').version, before.version);
  await visible(page.locator('.page-head .badge', { hasText: `live → v${live.version} disabled` }));
  await visible(page.locator('.page-head .badge', { hasText: `answering: v${before.version} (fallback)` }));
  await visible(page.locator('#feature-drift p', { hasText: `v${before.version} answers as a fallback` }));
  assert.equal(await page.getAttribute('button[data-action="rollback"]', 'title'), `Moves live back to v${before.version}`);
  await shot('model-live-disabled-1280');
  // The overview's row for the model says it too.
  await go('#/overview');
  const liveCell = page.locator('tr[data-model="likes"] td.live');
  await waitFor('the overview marks live disabled', async () =>
    /disabled/.test(await liveCell.textContent()), WAIT);
  assert.match(await liveCell.textContent(), new RegExp(`^v${live.version} disabled v${before.version} answers$`));
  // So does the list of models (a green "live → v" read as serving).
  await go('#/models');
  await visible(page.locator('.badge', { hasText: `live → v${live.version} disabled` }));
  await go('#/models/likes');
  await visible(page.locator(`${row} button[data-action="enable"]`));
  await page.click(`${row} button[data-action="enable"]`);
  await confirmDialog('browser test: enable the live version again');
  await notice.waitFor({ state: 'detached', timeout: WAIT });
  await visible(page.locator('.page-head .badge', { hasText: new RegExp(`^live → v${live.version}$`) }));
  await go('#/overview');
  await waitFor('the overview shows live serving again', async () =>
    (await liveCell.textContent()) === `v${live.version}`, WAIT);

  // Someone else rolls back while the dialog is open: the page's rollback
  // (sent with If-Match: live as shown) is refused, not done a second time.
  await go('#/models/likes');
  await visible(page.locator('.page-head .badge', { hasText: new RegExp(`^live → v${live.version}$`) }));
  await page.click('button[data-action="rollback"]');
  await visible(page.locator('#dialog'));
  assert.match(await page.textContent('#dialog-text'), new RegExp(`from v${live.version} back to v${before.version}`));
  const other = await http('POST', '/v1/models/likes/rollback', { auth: 'basic', body: { reason: 'browser test: someone else rolls back' } });
  assert.equal(other.status, 200, other.text);
  const moves = (await http('GET', '/v1/models/likes/deployments', { auth: 'basic' })).json.deployments.length;
  await confirmDialog('browser test: a rollback from a stale page');
  await visible(page.locator('#flash .alert.error', { hasText: 'changed while you looked' }));
  await visible(page.locator('.page-head .badge', { hasText: new RegExp(`^live → v${before.version}$`) }));
  const now = await http('GET', '/v1/models/likes/aliases/live', { auth: 'basic' });
  assert.equal(now.json.version, before.version, 'live rolled back once');
  assert.equal((await http('GET', '/v1/models/likes/deployments', { auth: 'basic' })).json.deployments.length, moves);
});

step('experiments: start one, see each arm\'s share and live metrics, end it', async () => {
  const versions = await versionsOf('likes');
  const live = versions.find((v) => (v.aliases || []).includes('live'));
  const others = versions.filter((v) => v !== live).sort((a, b) => b.version - a.version);
  const other = others.find((v) => v.status !== 'rejected') || others[0];
  const startForm = async () => {
    await go('#/overview'); // a fresh form: the deployments view draws it anew
    await go('#/deployments/likes');
    await visible(page.locator('button[data-action="start-experiment"]'));
  };
  const armsShown = () => page.locator('.arm-row .arm-version').evaluateAll((els) => els.map((e) => e.value));
  // Live with 90 %, beside the newest other version the gate did not reject:
  // with a newer rejected version (stubbed), that one is left out.
  const versionsStub = routeStub((j) => {
    const top = Math.max(...j.versions.map((v) => v.version));
    j.versions.forEach((v) => { if (v.version === other.version) v.status = 'candidate'; });
    j.versions.push({ ...j.versions.find((v) => v.version === top), version: top + 1, status: 'rejected', aliases: [] });
  });
  await page.route('**/v1/models/likes/versions', versionsStub.handler);
  try {
    await startForm();
    assert.deepEqual(await armsShown(), [String(live.version), String(other.version)]);
  } finally {
    await versionsStub.unroute('**/v1/models/likes/versions');
    versionsStub.finish();
  }
  await startForm();
  // Each arm may be named (two arms of one version need names), and a
  // disabled version is shown but cannot be picked (the server refuses it).
  assert.equal(await page.locator('.arm-row .arm-name').count(), 2);
  const offered = await page.locator('.arm-row >> nth=0 >> .arm-version option').evaluateAll((els) => els.map((o) => [o.value, o.disabled]));
  for (const [v, off] of offered) assert.equal(off, versions.find((x) => String(x.version) === v).disabled === true, `v${v}`);
  const arms = await armsShown();
  assert.deepEqual(arms, [String(live.version), String(other.version)]);
  assert.deepEqual(await page.locator('.arm-row .arm-weight').evaluateAll((els) => els.map((e) => e.value)), ['0.9', '0.1']);
  // The server's refusal shows beside the form, naming the field.
  await page.fill('.arm-row >> nth=0 >> .arm-weight', '0');
  await page.click('button[data-action="start-experiment"]');
  await confirmDialog('browser test: a weight of 0');
  await visible(page.locator('#experiment-errors .alert.error', { hasText: 'arms[0].weight' }));
  // An empty weight box is not a weight of 0: refused on its row, no dialog.
  await startForm();
  await page.fill('.arm-row >> nth=1 >> .arm-weight', '');
  await page.click('button[data-action="start-experiment"]');
  await visible(page.locator('.arm-row >> nth=1 >> .arm-error', { hasText: 'Give this arm a weight' }));
  assert.equal(await page.locator('.arm-row >> nth=0 >> .arm-error').count(), 0, 'only the empty row is marked');
  assert.equal(await page.locator('#dialog').isVisible(), false, 'nothing to confirm');
  assert.equal(await page.getAttribute('.arm-row >> nth=1 >> .arm-weight', 'aria-invalid'), 'true');
  // With every arm removed, no dialog: a message instead.
  await startForm();
  for (let n = await page.locator('.arm-row').count(); n > 0; n -= 1) await page.locator('.arm-row button', { hasText: 'Remove' }).first().click();
  await page.click('button[data-action="start-experiment"]');
  await visible(page.locator('#experiment-errors .alert.error', { hasText: 'Add at least one arm' }));
  assert.equal(await page.locator('#dialog').isVisible(), false, 'no empty confirm dialog');
  await startForm();
  await page.click('button[data-action="start-experiment"]');
  await confirmDialog('browser test: 10 % on the other version');
  await visible(page.locator('#flash .alert.success', { hasText: /Started experiment \d+ on likes/ }));
  // The model's page shows the running experiment, linked to where it is managed.
  await go('#/models/likes');
  const onModel = page.locator('#model-experiment');
  await visible(onModel);
  assert.match(await onModel.textContent(), /active/);
  assert.match(await onModel.locator(`tr:has-text("v${live.version}")`).first().textContent(), /90 %/);
  assert.match(await onModel.locator(`tr:has-text("v${other.version}")`).first().textContent(), /10 %/);
  // Live's version is also an arm: its drift is shown once, with both roles.
  const drift = page.locator(`#feature-drift .drift-version[data-version="${live.version}"]`);
  await visible(drift);
  assert.equal(await drift.count(), 1, 'one drift table per version');
  assert.match(await drift.locator('h3').textContent(), new RegExp(`^v${live.version} \\(live, arm:v${live.version}\\)`));
  await onModel.locator('a', { hasText: 'Manage it on Deployments' }).click();
  await visible(page.locator('h1', { hasText: 'Deployments' }));
  const card = page.locator('[data-experiment]').first();
  await visible(card);
  assert.match(await card.textContent(), /active/);
  assert.match(await card.textContent(), /90 %/);
  assert.match(await card.textContent(), /10 %/);
  // Traffic while the overview is open: predictions for many entities, split
  // between the arms by the entity's hash; the overview's rates follow live.
  await go('#/overview');
  await visible(page.locator('.tile', { hasText: 'Predictions per second' }));
  await page.waitForTimeout(2500); // one poll before the traffic: the server's rate is between polls
  for (let i = 0; i < 80; i += 1) {
    const r = await http('POST', '/v1/models/likes/predict', { auth: 'basic',
      body: { entity: `browser-${i}`, features: { length: 40 + i, hashtags: i % 5, breed: i % 2 ? 'pug' : 'corgi' }, deadline_ms: 5000 } });
    assert.equal(r.status, 200, r.text);
    await new Promise((r2) => setTimeout(r2, 40));
  }
  await waitFor('predictions per second and p99 on the overview', async () => {
    const rate = await page.locator('.tile', { hasText: 'Predictions per second' }).locator('.value').textContent();
    const p99 = await page.locator('.tile', { hasText: 'p99 latency' }).locator('.value').textContent();
    return parseFloat(rate) > 0 && /\d\s*ms/.test(p99);
  }, WAIT, 500);
  await shot('overview-traffic-1280');
  await go('#/deployments/likes');
  await visible(card);
  await waitFor('predictions counted per arm on the page', async () => {
    const counts = await card.locator('tbody tr td:nth-child(4)').allTextContents();
    return counts.length === 2 && counts.every((t) => Number(t.replace(/,/g, '')) > 0);
  }, 20_000, 500);
  await visible(page.locator('h2', { hasText: 'Live metrics' }));
  // Each arm against the arm answering with live's version: too few
  // outcomes at first; with 600 more entities' outcomes, the difference in
  // the gate's metric, its interval, and what the interval allows saying.
  const againstLive = (v) => card.locator(`tr[data-arm="v${v}"] td:nth-child(8)`);
  await waitFor('the other arm compared, with too few entities yet', async () => /too few entities/.test(await againstLive(other.version).textContent()), 20_000, 500);
  assert.match(await againstLive(live.version).textContent(), /the reference/);
  const instances = Array.from({ length: 600 }, (_, i) => ({ entity: `browser-cmp-${i}`, features: { length: 40 + (i % 50), hashtags: i % 5, breed: i % 2 ? 'pug' : 'corgi' } }));
  const asked = await http('POST', '/v1/models/likes/predict', { auth: 'basic', body: { instances, deadline_ms: 5000 } });
  assert.equal(asked.status, 200, asked.text);
  const logged = async () => {
    const r = await http('GET', `/v1/models/likes/predictions?entity=browser-cmp-599&limit=5`, { auth: 'basic' });
    return r.status === 200 && JSON.parse(r.text).predictions.length > 0;
  };
  await waitFor('the 600 predictions logged', logged, WAIT, 200);
  const outcomes = await http('POST', '/v1/facts', { auth: 'basic', body: instances.map((x, i) => ({ stream: 'likes', entity: x.entity, data: { likes: 30 + (i % 40) } })) });
  assert.equal(outcomes.status, 200, outcomes.text);
  await waitFor('a verdict on the other arm', async () => /rmse [+−-]?[\d.,]+ \[[^\]]+\] (better|worse|inconclusive)/.test(await againstLive(other.version).textContent()), 30_000, 500);
  assert.match(await page.locator('td.primary-metric', { hasText: /rmse [\d.,]+ \[[\d.,]+, [\d.,]+\]/ }).first().textContent(), /rmse/);
  await shot('deployments-experiment-compared-1280');
  // An arm whose version is disabled is marked, here and on the model's page:
  // live answers its share.
  const otherArm = card.locator(`tr[data-arm="v${other.version}"]`);
  assert.equal(await otherArm.locator('.badge.bad').count(), 0, 'no mark while it serves');
  const off = await http('POST', `/v1/models/likes/versions/${other.version}/disable`, { auth: 'basic', body: { reason: 'browser test: an arm out of service' } });
  assert.equal(off.status, 200, off.text);
  await visible(otherArm.locator('.badge.bad', { hasText: 'disabled — live answers its share' }));
  assert.equal(await card.locator(`tr[data-arm="v${live.version}"] .badge.bad`).count(), 0, 'the live arm is not marked');
  // Its requests, answered by live meanwhile, are its fallbacks: the row
  // showed only its own version's, "0 fallbacks".
  const offInstances = Array.from({ length: 120 }, (_, i) => ({ entity: `browser-off-${i}`, features: { length: 50, hashtags: 1, breed: 'pug' } }));
  const offAsked = await http('POST', '/v1/models/likes/predict', { auth: 'basic', body: { instances: offInstances, deadline_ms: 5000 } });
  assert.equal(offAsked.status, 200, offAsked.text);
  const onOff = offAsked.json.predictions.filter((p) => p.arm === `v${other.version}`);
  assert.ok(onOff.length > 0 && onOff.every((p) => p.fallback), 'the disabled arm\'s share falls back');
  await waitFor('the disabled arm\'s fallbacks counted', async () => Number((await otherArm.locator('td:nth-child(6)').textContent()).replace(/,/g, '')) >= onOff.length, 20_000, 500);
  assert.match(await otherArm.locator('td:nth-child(4)').getAttribute('title'), /answered by another version/);
  await shot('deployments-experiment-1280');
  await go('#/models/likes');
  await visible(page.locator(`#model-experiment tr[data-arm="v${other.version}"] .badge.bad`, { hasText: 'disabled — live answers its share' }));
  const on = await http('POST', `/v1/models/likes/versions/${other.version}/enable`, { auth: 'basic', body: { reason: 'browser test: the arm back' } });
  assert.equal(on.status, 200, on.text);
  await page.locator(`#model-experiment tr[data-arm="v${other.version}"] .badge.bad`).waitFor({ state: 'detached', timeout: WAIT });
  await go('#/deployments/likes');
  await visible(card);
  await card.locator('button[data-action="end-experiment"]').click();
  await confirmDialog('browser test: enough traffic');
  await visible(page.locator('#flash .alert.success', { hasText: /Ended experiment \d+ of likes/ }));
  await waitFor('the ended badge', async () => /ended/.test(await card.textContent()), WAIT);
  await visible(page.locator('button[data-action="start-experiment"]'));
  // Its end kept what its arms showed, though its traffic is no longer kept apart.
  await visible(card.locator('.experiment-results', { hasText: 'As its arms stood when it ended' }));
  const keptCounts = await card.locator('tbody tr td:nth-child(4)').allTextContents();
  assert.ok(keptCounts.length === 2 && keptCounts.every((t) => Number(t.replace(/,/g, '')) > 0), keptCounts.join());
  assert.match(await againstLive(other.version).textContent(), /rmse [+−-]?[\d.,]+ \[[^\]]+\] (better|worse|inconclusive)/);
  assert.match(await againstLive(live.version).textContent(), /the reference/);
});

step('recent predictions: the log with its outcomes, filtered by entity', async () => {
  await go('#/deployments/likes');
  const card = page.locator('#recent-predictions');
  await visible(card.locator('tbody tr'));
  // An outcome for one of the entities the step above predicted for.
  const r = await http('POST', '/v1/facts', { auth: 'basic', body: { stream: 'likes', entity: 'browser-3', data: { likes: 41 } } });
  assert.equal(r.status, 201, r.text);
  await page.fill('#prediction-entity', 'browser-3');
  await page.press('#prediction-entity', 'Enter');
  await waitFor('only browser-3, joined to its outcome', async () => {
    const entities = await card.locator('tbody tr td:nth-child(2)').allTextContents();
    const outcomes = await card.locator('tbody tr td:nth-child(8)').allTextContents();
    return entities.length >= 1 && entities.every((e) => e === 'browser-3') &&
      outcomes.every((o) => o === '41 (by entity)');
  }, WAIT, 300);
  // The demo's labels are intervals: an outcome with its bounds reads "5–9".
  const r2 = await http('POST', '/v1/facts', { auth: 'basic', body: { stream: 'likes', entity: 'browser-4', data: { likes: { lower: 5, upper: 9 } } } });
  assert.equal(r2.status, 201, r2.text);
  await page.fill('#prediction-entity', 'browser-4');
  await page.press('#prediction-entity', 'Enter');
  await waitFor('browser-4 joined to its interval outcome', async () => {
    const outcomes = await card.locator('tbody tr td:nth-child(8)').allTextContents();
    const entities = await card.locator('tbody tr td:nth-child(2)').allTextContents();
    return outcomes.length >= 1 && entities.every((e) => e === 'browser-4') && outcomes.every((o) => o === '5–9 (by entity)');
  }, WAIT, 300);
  await shot('deployments-predictions-1280');
  // Shapes the demo does not make, stubbed: an outcome with its confidence,
  // an answer a hair below 0, a shadow arm's latency under 0.01 ms.
  const isLog = (u) => new URL(u).pathname === '/v1/models/likes/predictions';
  await page.route(isLog, (rt) => rt.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ model: 'likes', next_cursor: null,
    predictions: [{ id: 'stub-1-shadow-v2', time: new Date().toISOString(), entity: 'stub-1', version: 2, arm: 'shadow-v2', shadow: true,
      prediction: -1e-12, fallback: false, reason: null, latency_ms: 0.007,
      outcome: { fact: 1, joined_by: 'prediction_id', value: { value: 12, confidence: 0.8 } } }] }) }));
  try {
    await page.fill('#prediction-entity', 'stub-1');
    await page.press('#prediction-entity', 'Enter');
    const row = card.locator('tr[data-prediction="stub-1-shadow-v2"]');
    await visible(row);
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[4], '0', `a prediction of -1e-12 reads 0: ${cells}`);
    assert.equal(cells[6], '< 0.01', `a latency of 0.007 ms is not 0: ${cells}`);
    assert.equal(cells[7], '12 (confidence 0.8) (by prediction id)', `${cells}`);
  } finally {
    await page.unroute(isLog);
  }
  await page.fill('#prediction-entity', 'no-such-entity');
  await page.press('#prediction-entity', 'Enter');
  await visible(card.locator('p', { hasText: 'No logged prediction for entity no-such-entity.' }));
  await page.fill('#prediction-entity', '');
  await page.press('#prediction-entity', 'Enter');
  await waitFor('every entity again', async () => {
    const entities = await card.locator('tbody tr td:nth-child(2)').allTextContents();
    return new Set(entities).size > 1;
  }, WAIT, 300);
});

step('a cancelled training run stays on the model page, with why, until another run finishes', async () => {
  await go('#/models/likes');
  await visible(page.locator('tr[data-version="1"]'));
  assert.equal(await page.locator('#last-job-problem').count(), 0, 'the last run succeeded: no box');
  const r = await http('POST', '/v1/models/likes/train', { auth: 'basic', body: { reason: 'browser test: to be cancelled' } });
  assert.equal(r.status < 300, true, r.text);
  const c = await http('POST', `/v1/jobs/${r.json.job}/cancel`, { auth: 'basic', body: {} });
  assert.equal(c.status < 300, true, c.text);
  await waitFor(`job ${r.json.job} cancelled`, async () =>
    (await http('GET', `/v1/jobs/${r.json.job}`, { auth: 'basic' })).json.state === 'cancelled', TRAIN_WAIT, 300);
  const box = page.locator('#last-job-problem');
  await visible(box);
  assert.match(await box.textContent(), new RegExp(`The last training run was cancelled.*Job #${r.json.job} cancelled`));
  assert.equal(await box.locator(`tr[data-job="${r.json.job}"]`).count(), 1);
  // Its last progress message is shown as where it stopped, not as if it ran on.
  assert.match(await box.locator(`tr[data-job="${r.json.job}"] .job-message`).textContent(), /^(stopped at \d+(\.\d+)?\s?%|never started)/);
  await shot('model-job-cancelled-1280');
}, TRAIN_WAIT + 30_000);

step('archive a model (asked again, since it answered lately) and restore it', async () => {
  await go('#/models/likes');
  await visible(page.locator('button[data-action="archive"]'));
  await page.click('button[data-action="archive"]');
  await visible(page.locator('#dialog'));
  await page.fill('#dialog-reason', 'browser test: retired');
  await page.click('#dialog-ok');
  // "likes" answered predictions minutes ago: the server asks for force, and
  // the page asks the person once more, quoting it (the dialog closes and
  // opens again at once: waiting for it to be hidden could miss it).
  await visible(page.locator('#dialog-text', { hasText: 'within the last 10 minutes' }));
  assert.match(await page.textContent('#dialog-text'), /answered a prediction at .*within the last 10 minutes/);
  assert.equal(await page.textContent('#dialog-ok'), 'Archive anyway');
  await confirmDialog();
  const notice = page.locator('#archived-notice');
  await visible(notice);
  assert.match(await notice.textContent(), /Archived .* by admin: browser test: retired\./);
  assert.equal(await page.locator('button[data-action="train"]').count(), 0, 'no training for an archived model');
  await page.locator('button[data-action="promote"]').first().waitFor({ state: 'detached', timeout: WAIT });
  assert.equal(await page.locator('button[data-action="disable"]').count(), 0, 'no version actions on an archived model');
  // Nor a prediction or a definition (they met a 404 and a 409).
  await waitFor('predict and save off', async () => (await page.isDisabled('button[data-action="try-predict"]'))
    && (await page.isDisabled('button[data-action="save-definition"]')), WAIT);
  await visible(page.locator('button[data-action="restore"]'));
  const p = await http('POST', '/v1/models/likes/predict', { auth: 'basic', body: { features: { length: 10 } } });
  assert.equal(p.status, 404, p.text);
  assert.match(p.json.error.message, /is archived/);
  await shot('model-archived-1280');
  // Listed apart, with who and why.
  await go('#/models');
  const archived = page.locator('#archived-models tr[data-model="likes"]');
  await visible(archived);
  assert.match(await archived.textContent(), /admin.*browser test: retired/);
  await archived.locator('a').click();
  await visible(page.locator('button[data-action="restore"]'));
  await page.click('button[data-action="restore"]');
  await confirmDialog('browser test: needed again');
  await visible(page.locator('button[data-action="archive"]'));
  assert.equal(await page.locator('#archived-notice').count(), 0);
  await visible(page.locator('button[data-action="train"]'));
  await visible(page.locator('button[data-action="promote"]'));
  await waitFor('predict and save on again', async () => !(await page.isDisabled('button[data-action="try-predict"]'))
    && !(await page.isDisabled('button[data-action="save-definition"]')), WAIT);
  const again = await http('POST', '/v1/models/likes/predict', { auth: 'basic', body: { features: { length: 10 } } });
  assert.equal(again.status, 200, again.text);
  await go('#/models');
  await visible(page.locator('a', { hasText: 'likes' }));
  assert.equal(await page.locator('#archived-models').count(), 0, 'nothing archived: no list');
});

step('a bad definition shows the server\'s validation errors by field', async () => {
  await go('#/models/likes');
  await visible(page.locator('#definition'));
  const def = JSON.parse(await page.inputValue('#definition'));
  def.task = 'banana';
  def.holdout = 7;
  await page.fill('#definition', JSON.stringify(def, null, 2));
  await page.click('button[data-action="save-definition"]');
  const errs = page.locator('#definition-errors .alert.error');
  await visible(errs);
  const fields = await errs.locator('li code').allTextContents();
  assert.ok(fields.includes('task'), `errors name the field "task": ${fields}`);
  assert.ok(fields.includes('holdout'), `errors name the field "holdout": ${fields}`);
  assert.match(await errs.textContent(), /between 0\.05 and 0\.9/);
  const m = await http('GET', '/v1/models/likes', { auth: 'basic' });
  assert.equal(m.json.definition.task, 'regression', 'nothing was saved');
  // Not JSON at all: a plain message with the line and column, nothing sent.
  await page.fill('#definition', '{\n  "task": "regression",\n  "holdout": 0.2\n  "algorithm": "auto"\n}');
  await page.click('button[data-action="save-definition"]');
  await visible(errs.locator('text=not valid JSON'));
  assert.match(await errs.textContent(), /Line 4, column 3: expected , or \}/);
  assert.doesNotMatch(await errs.textContent(), /exception|parse_error|position/);
  await page.evaluate(() => {
    document.querySelector('#flash').replaceChildren();
    document.querySelector('#definition').scrollTop = 1e6;
    const card = document.querySelector('#definition').closest('.card');
    window.scrollTo(0, card.getBoundingClientRect().top + window.scrollY - 60);
  });
  await page.screenshot({ path: path.join(SHOTS, 'definition-error-1280.png') });
  // A good save: the card's and the header's revision follow at once.
  const revBefore = m.json.revision;
  await page.fill('#definition', JSON.stringify({ ...m.json.definition, holdout: m.json.definition.holdout === 0.25 ? 0.3 : 0.25 }, null, 2));
  await page.click('button[data-action="save-definition"]');
  await visible(page.locator('#definition-errors .alert.success', { hasText: `revision ${revBefore + 1}` }));
  assert.equal(await page.textContent('#definition-revision'), `revision ${revBefore + 1}`);
  await waitFor('the header\'s revision', async () => (await page.textContent('#model-revision')) === `revision ${revBefore + 1}`, WAIT);

  // Someone else saves while this page edits: the page's save is refused
  // (If-Match names the revision its text came from), theirs stays.
  const theirs = (await http('GET', '/v1/models/likes', { auth: 'basic' })).json.definition;
  const saved = await http('PUT', '/v1/models/likes', { auth: 'basic', body: { ...theirs, holdout: 0.35 } });
  assert.equal(saved.status, 200, saved.text);
  await page.fill('#definition', JSON.stringify({ ...theirs, holdout: 0.4 }, null, 2));
  await page.click('button[data-action="save-definition"]');
  const stale = page.locator('#definition-stale');
  await visible(stale);
  assert.match(await stale.textContent(), new RegExp(`revision ${revBefore + 2} was saved while you edited revision ${revBefore + 1}`));
  assert.match(await page.inputValue('#definition'), /"holdout": 0\.4/, 'the text is kept');
  let after = await http('GET', '/v1/models/likes', { auth: 'basic' });
  assert.equal(after.json.revision, revBefore + 2);
  assert.equal(after.json.definition.holdout, 0.35, 'their save stays');
  // Reset loads theirs; a change made there saves.
  await page.click('button:text-is("Reset")');
  await waitFor('their text', async () => /"holdout": 0\.35/.test(await page.inputValue('#definition')), WAIT);
  await page.fill('#definition', JSON.stringify(theirs, null, 2));
  await page.click('button[data-action="save-definition"]');
  await visible(page.locator('#definition-errors .alert.success', { hasText: `revision ${revBefore + 3}` }));
  after = await http('GET', '/v1/models/likes', { auth: 'basic' });
  assert.equal(after.json.definition.holdout, theirs.holdout);
  // An edit not saved survives leaving the page (it was lost without a
  // word), said when it comes back; Reset drops it.
  const edited = JSON.stringify({ ...theirs, holdout: 0.45 }, null, 2);
  await page.fill('#definition', edited);
  await go('#/jobs');
  await visible(page.locator('h1', { hasText: 'Jobs' }));
  await go('#/models/likes');
  await visible(page.locator('#definition-draft', { hasText: `Your edit of revision ${revBefore + 3}, not saved yet, is back` }));
  assert.equal(await page.inputValue('#definition'), edited);
  await page.click('button[data-action="reset-definition"]');
  await waitFor('the saved text', async () => !/"holdout": 0\.45/.test(await page.inputValue('#definition')), WAIT);
  await go('#/jobs');
  await visible(page.locator('h1', { hasText: 'Jobs' }));
  await go('#/models/likes');
  await visible(page.locator('#definition'));
  assert.equal(await page.locator('#definition-draft').count(), 0, 'nothing kept after Reset');
});

// What has keyboard focus: its id, tag, aria-label and text.
const focused = () => page.evaluate(() => {
  const e = document.activeElement;
  return { id: e.id, tag: e.tagName, label: e.getAttribute('aria-label'), text: e.textContent.trim().slice(0, 40) };
});

step('API keys: create (shown once), use, revoke', async () => {
  await page.click('#nav a[data-view="keys"]');
  await visible(page.locator('h1', { hasText: 'API keys' }));
  // A page chosen from the menu starts at the page, not on <body>.
  await waitFor('focus on the page', async () => (await focused()).id === 'main', WAIT);
  await page.fill('#key-name', 'browser-test');
  await page.check('#key-scope-predict');
  // A limit field with no name in it is said, not sent as "any".
  const keysBefore = (await http('GET', '/v1/keys', { auth: 'basic' })).json.count;
  await page.fill('#key-streams', ' , ');
  await page.click('button[data-action="create-key"]');
  await visible(page.locator('#key-created .alert.error', { hasText: 'names none' }));
  assert.equal((await http('GET', '/v1/keys', { auth: 'basic' })).json.count, keysBefore, 'no key made');
  await page.fill('#key-streams', '');
  await page.selectOption('#key-expires', '7');
  await page.fill('#key-models', 'likes, likes');
  await page.click('button[data-action="create-key"]');
  await visible(page.locator('#new-key'));
  assert.match(await page.textContent('#key-created'), /It stops working at /);
  // The shown-once secret takes focus, so a screen reader reads it out.
  await waitFor('focus on the new key', async () => (await focused()).id === 'key-created', WAIT);
  const key = (await page.textContent('#new-key')).trim();
  assert.ok(key.length >= 20, `a key: ${key}`);
  const row = page.locator('tr', { hasText: 'browser-test' });
  await visible(row);
  assert.match(await row.first().textContent(), /predict/);
  // Seven days: pointed out as close; not used yet; one model only.
  assert.match(await row.first().textContent(), /expires soon/);
  assert.match(await row.first().textContent(), /only models: likes/);
  const created = await http('GET', '/v1/keys?state=active', { auth: 'basic' });
  const made = created.json.keys.find((k) => k.name === 'browser-test');
  const days = (Date.parse(made.expires_at) - Date.now()) / 86400e3;
  assert.ok(days > 6.9 && days <= 7, `expires in 7 days: ${made.expires_at}`);
  assert.equal(made.last_used_at, null);
  assert.equal((await http('GET', '/v1/models', { auth: key })).status, 200, 'the new key reads');
  assert.equal((await http('POST', '/v1/models/likes/train', { auth: key, body: {} })).status, 403, 'but may not train');
  assert.equal((await http('POST', '/v1/models/other/predict', { auth: key, body: { features: {} } })).status, 403, 'nor ask another model');
  // Its use shows in the list within a poll.
  await waitFor('the key\'s last use', async () => (await row.first().locator('td').nth(6).textContent()).trim() !== 'never', WAIT);
  await shot('keys-1280');
  // Keyboard focus on a key's Revoke stays there when the list is drawn
  // anew (another key created elsewhere): it fell to <body>.
  const revoke = row.first().locator('button[data-action="revoke"]');
  await revoke.focus();
  const other = await http('POST', '/v1/keys', { auth: 'basic', body: { name: 'browser-test-other', scopes: ['read'] } });
  assert.equal(other.status, 201, other.text);
  await visible(page.locator('tr', { hasText: 'browser-test-other' }));
  assert.equal((await focused()).label, 'Revoke key "browser-test"');
  // A destructive action with nothing to type opens on Cancel: Enter twice
  // does not revoke.
  await page.keyboard.press('Enter');
  await visible(page.locator('#dialog'));
  assert.equal((await focused()).id, 'dialog-cancel');
  await confirmDialog();
  await visible(page.locator('#flash .alert.success', { hasText: 'Revoked API key "browser-test"' }));
  // It leaves the list of active keys; the revoked ones show it.
  await page.locator('tr[data-key]', { hasText: /^browser-test(?!-other)/ }).waitFor({ state: 'detached', timeout: WAIT });
  // Focus leaves the revoked key's row for the page's heading, not for
  // another key's Revoke.
  await waitFor('focus on the heading', async () => (await focused()).tag === 'H1', WAIT);
  await page.selectOption('#key-state', 'revoked');
  await waitFor('the revoked badge', async () => /revoked/.test(await row.first().textContent()), WAIT);
  assert.equal(await row.first().locator('button[data-action="revoke"]').count(), 0, 'no Revoke on a revoked key');
  await page.selectOption('#key-state', 'active');
  assert.equal((await http('DELETE', `/v1/keys/${other.json.id}`, { auth: 'basic' })).status, 200);
  // The revoked key's secret leaves the screen.
  await page.locator('#new-key').waitFor({ state: 'detached', timeout: WAIT });
  await waitFor('the key to be refused', async () => (await http('GET', '/v1/models', { auth: key })).status === 401, 10_000);
});

step('API keys: a long list grows by a page on request', async () => {
  const made = [];
  for (let i = 0; i < 101; i++) {
    const r = await http('POST', '/v1/keys', { auth: 'basic', body: { name: `bulk-${i}`, scopes: ['read'] } });
    assert.equal(r.status, 201, r.text);
    made.push(r.json.id);
  }
  const count = (await http('GET', '/v1/keys?state=active&limit=1', { auth: 'basic' })).json.count;
  await go('#/keys');
  await waitFor('the first page', async () => (await page.textContent('#key-count')).startsWith(`100 of ${count} shown`), WAIT);
  assert.equal(await page.locator('tr[data-key]').count(), 100);
  await page.click('button[data-action="more-keys"]');
  await waitFor('the whole list', async () => (await page.textContent('#key-count')).startsWith(`${count} of ${count} shown`), WAIT);
  assert.equal(await page.locator('button[data-action="more-keys"]').count(), 0, 'nothing more to show');
  for (const id of made) assert.equal((await http('DELETE', `/v1/keys/${id}`, { auth: 'basic' })).status, 200);
});

step('an error from the server is a message, not a blank page', async () => {
  // One message, no empty cards, and the page stops asking for the model.
  const asked = [];
  const onRequest = (rq) => { if (rq.url().includes('/v1/models/no-such-model')) asked.push(rq.url()); };
  page.on('request', onRequest);
  await go('#/models/no-such-model');
  await visible(page.locator('#main .alert.error'));
  assert.match(await page.textContent('#main .alert.error'), /no model named "no-such-model"/);
  await page.waitForTimeout(300);
  const n = asked.length;
  await page.waitForTimeout(4500); // two polls
  page.off('request', onRequest);
  assert.equal(asked.length, n, `no more requests for the missing model: ${asked.slice(n).join(', ')}`);
  assert.equal(await page.locator('#main .alert.error').count(), 1);
  assert.equal(await page.locator('#main .card').count(), 0, 'no empty cards');
  assert.doesNotMatch(await page.textContent('#main'), /Loading/);
  // A job that does not exist: one message, no "Loading…" that never ends.
  await go('#/jobs/999999');
  await visible(page.locator('#job-missing', { hasText: 'There is no job 999999' }));
  await page.waitForTimeout(2500); // a poll
  assert.equal(await page.locator('#main .card').count(), 1, 'the message alone');
  assert.doesNotMatch(await page.textContent('#main'), /Loading/);
  // Nor a stream no fact was sent to (it read as an empty one).
  await go('#/streams/no-such-stream');
  await visible(page.locator('#stream-missing', { hasText: 'There is no stream named "no-such-stream"' }));
  // Deployments of a model that does not exist: said, then the first model.
  await go('#/deployments/no-such-model');
  await visible(page.locator('#deploy-unknown', { hasText: 'There is no model named "no-such-model"' }));
  assert.notEqual(await page.inputValue('#deploy-model'), 'no-such-model');
  // A malformed escape in the address names no page (it threw a URIError,
  // and the view before it stayed).
  await go('#/models/%E0%A4%A');
  await visible(page.locator('#main .alert.warn', { hasText: 'There is no page at #/models/%E0%A4%A' }));
  assert.equal(await page.locator('#deploy-model').count(), 0, 'the view before it is gone');
});

step('a page whose refresh fails is dimmed and says when what it shows is from', async () => {
  await go('#/overview');
  await visible(page.locator('.component[data-component="writer"]'));
  await page.waitForTimeout(2500); // a refresh that succeeded
  await page.route('**/v1/overview', (r) => r.abort());
  try {
    await visible(page.locator('.view-error .alert.error', { hasText: 'what is below is as it was at' }), 10_000);
    assert.equal(await page.locator('#main .stale').count(), 1);
  } finally {
    await page.unroute('**/v1/overview');
  }
  await page.locator('#main .stale').waitFor({ state: 'detached', timeout: 10_000 });
  assert.equal(await page.locator('.view-error .alert').count(), 0);
});

step('empty states and a missing /v1/overview say what to do next', async () => {
  // Answers the page could meet on another server, stubbed in the browser.
  await page.route('**/v1/overview', (r) => r.fulfill({ status: 404, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'not_found', message: 'no route GET /v1/overview' } }) }));
  await page.route('**/v1/streams', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: '{"streams":[]}' }));
  try {
    await go('#/overview');
    await visible(page.locator('.alert.info', { hasText: 'The live overview is not available on this server yet' }));
    // What the older endpoints tell is still shown.
    await visible(page.locator('.component[data-component="writer"]'));
    await visible(page.locator('.component[data-component="serving"]'));
    await shot('overview-no-endpoint-1280');
    await go('#/streams');
    await visible(page.locator('h2', { hasText: 'No facts yet' }));
    const curl = await page.textContent('.empty pre');
    assert.match(curl, new RegExp(`curl -X POST ${server.base}/v1/facts`));
    assert.match(curl, /Authorization: Bearer/);
  } finally {
    await page.unroute('**/v1/overview');
    await page.unroute('**/v1/streams');
  }
  // An empty prediction log: the example request is for this server, with
  // the JSON content type (without it the answer is 415), and works as copied.
  const isLog = (u) => new URL(u).pathname === '/v1/models/likes/predictions';
  await page.route(isLog, (r) => r.fulfill({ status: 200, contentType: 'application/json', body: '{"model":"likes","predictions":[],"next_cursor":null}' }));
  try {
    await go('#/deployments/likes');
    const pre = page.locator('#predictions-empty pre');
    await visible(pre);
    const curl = await pre.textContent();
    assert.match(curl, new RegExp(`^curl -X POST ${server.base}/v1/models/likes/predict `));
    assert.match(curl, /-H 'Content-Type: application\/json'/);
    assert.doesNotMatch(curl, /localhost:8080|…/);
    const body = JSON.parse(curl.match(/-d '(.*)'$/s)[1]);
    const asked = await http('POST', '/v1/models/likes/predict', { auth: 'basic', body });
    assert.equal(asked.status, 200, `the example body is a valid request: ${asked.text}`);
    assert.equal(asked.json.imputed_fields, undefined, `the example names every feature: ${asked.text}`);
  } finally {
    await page.unroute(isLog);
  }
  // A job that took less than a second did take time: "< 1 s", not "0 s".
  let quick = null;
  const isJobs = (u) => new URL(u).pathname === '/v1/jobs';
  const jobsStub = routeStub((j) => {
    // The page asks for active and finished jobs apart: only the finished list has one.
    const done = j.jobs.find((x) => x.started_at && x.finished_at);
    if (!done) return;
    done.finished_at = new Date(Date.parse(done.started_at) + 400).toISOString();
    quick = done.id;
  });
  await page.route(isJobs, jobsStub.handler);
  try {
    await go('#/jobs');
    await waitFor('the stubbed job list', async () => quick !== null, WAIT, 100);
    await visible(page.locator(`tr[data-job="${quick}"] td.num`));
    assert.equal(await page.textContent(`tr[data-job="${quick}"] td.num`), '< 1 s');
  } finally {
    await jobsStub.unroute(isJobs);
    jobsStub.finish();
  }
  await go('#/overview');
  await visible(page.locator('.tile', { hasText: 'Facts per second' }));
  await page.locator('.alert.info', { hasText: 'not available' }).waitFor({ state: 'detached', timeout: WAIT });
});

step('aggregate features: the answer names the values computed from the entity\'s history', async () => {
  // A model of its own: shoppers, their orders, and what they spent next.
  const now = Date.now();
  const iso = (ms) => new Date(ms).toISOString();
  const facts = [];
  for (let i = 0; i < 40; i++) {
    const entity = `shopper-${i}`;
    const t = now - 20 * 86400e3 - i * 60e3;
    facts.push({ stream: 'shoppers', entity, time: iso(t), data: { x1: i % 7 } });
    for (let k = 0; k < i % 4; k++) facts.push({ stream: 'orders', entity, time: iso(t - (k + 1) * 3600e3), data: { amount: 10 * (k + 1) } });
    facts.push({ stream: 'spend', entity, time: iso(t + 3600e3), data: { y: 2 * (i % 4) + (i % 7) } });
  }
  const stored = await http('POST', '/v1/facts', { auth: 'basic', body: facts });
  assert.equal(stored.status, 200, stored.text);
  assert.equal(stored.json.rejected, 0, stored.text);
  const put = await http('PUT', '/v1/models/spending', { auth: 'basic', body: {
    task: 'regression', features_from: 'shoppers', label: { stream: 'spend', field: 'y' }, algorithm: 'linear',
    features: [{ field: 'x1' },
      { field: 'orders_7d', aggregate: { stream: 'orders', op: 'count', window_seconds: 604800 } },
      { field: 'spent_7d', aggregate: { stream: 'orders', op: 'sum', of: 'amount', window_seconds: 604800 } }] } });
  assert.equal(put.status, 201, put.text);
  assert.equal((await http('POST', '/v1/models/spending/train', { auth: 'basic' })).status, 202);
  await waitFor('spending v1 live', async () => {
    const r = await http('GET', '/v1/models/spending/aliases/live', { auth: 'basic' });
    return r.status === 200 && r.json.version === 1;
  }, TRAIN_WAIT, 500);
  // Two orders today: counted as of now.
  const today = await http('POST', '/v1/facts', { auth: 'basic', body: [
    { stream: 'orders', entity: 'shopper-3', time: iso(now - 3600e3), data: { amount: 5 } },
    { stream: 'orders', entity: 'shopper-3', time: iso(now - 7200e3), data: { amount: 7 } }] });
  assert.equal(today.status, 200, today.text);
  await go('#/models/spending');
  await visible(page.locator('#try-body'));
  await page.fill('#try-body', JSON.stringify({ entity: 'shopper-3', features: { x1: 1 } }));
  await page.click('button[data-action="try-predict"]');
  const answer = page.locator('#try-answer');
  await visible(answer.locator('dd[data-aggregates="2"]'));
  assert.match(await answer.locator('dd[data-aggregates]').textContent(), /^orders_7d 2 · spent_7d 12 \(before \d{4}-\d\d-\d\dT/);
  // From the stored fact: as of its moment, the three orders before it.
  await page.check('#try-stored');
  await page.fill('#try-body', JSON.stringify({ entity: 'shopper-3', features: {} }));
  await page.click('button[data-action="try-predict"]');
  await visible(answer.locator('dd[data-stored]'));
  assert.match(await answer.locator('dd[data-aggregates]').textContent(), new RegExp(`^orders_7d 3 · spent_7d 60 \\(before ${iso(now - 20 * 86400e3 - 3 * 60e3).slice(0, 16)}`));
  // The explanation names them beside the field sent.
  const shown = await answer.locator('table.explain tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.field));
  assert.deepEqual(shown.slice().sort(), ['orders_7d', 'spent_7d', 'x1']);
  await page.uncheck('#try-stored');
  await shot('model-aggregates-1280');
}, TRAIN_WAIT + 60_000);

step('a holdout by time: each version says how its holdout was chosen, and one live was not compared with is left to a person', async () => {
  // Forty customers labelled a minute apart: the newest fifth are the holdout.
  const start = Date.now() - 30 * 86400e3;
  const iso = (ms) => new Date(ms).toISOString();
  const facts = [];
  for (let i = 0; i < 40; i++) {
    const entity = `customer-${i}`;
    facts.push({ stream: 'visits', entity, time: iso(start + i * 60e3), data: { x1: i % 5, x2: (i * 7) % 11 } });
    facts.push({ stream: 'returns', entity, time: iso(start + i * 60e3 + 30e3), data: { y: 3 * (i % 5) - ((i * 7) % 11) } });
  }
  const stored = await http('POST', '/v1/facts', { auth: 'basic', body: facts });
  assert.equal(stored.status, 200, stored.text);
  const put = await http('PUT', '/v1/models/returning', { auth: 'basic', body: {
    task: 'regression', features_from: 'visits', label: { stream: 'returns', field: 'y' }, algorithm: 'linear',
    features: [{ field: 'x1' }, { field: 'x2' }], holdout: { share: 0.2, by: 'time' } } });
  assert.equal(put.status, 201, put.text);
  const trained = async (n) => {
    assert.equal((await http('POST', '/v1/models/returning/train', { auth: 'basic' })).status, 202);
    await waitFor(`returning v${n} stored`, async () => (await versionsOf('returning')).some((v) => v.version === n), TRAIN_WAIT, 500);
  };
  await trained(1);
  // The first thirty labelled again today: the newest fifth are all
  // entities v1 learned from, so it cannot be compared on them.
  const again = await http('POST', '/v1/facts', { auth: 'basic', body: facts.filter((f, k) => f.stream === 'returns' && k < 60)
    .map((f, k) => ({ ...f, time: iso(Date.now() - 3600e3 + k * 1e3) })) });
  assert.equal(again.status, 200, again.text);
  await trained(2);
  await go('#/models/returning');
  const v1 = page.locator('tr[data-version="1"]');
  const v2 = page.locator('tr[data-version="2"]');
  await visible(v2);
  assert.match(await v1.locator('td.lineage').textContent(), /8 holdout.*holdout by time$/);
  assert.match(await v2.locator('td.gate').textContent(), /^passed: rmse .*; live v1 not compared: every holdout row is on its own training side \(its holdout began at label time /);
  assert.match(await v2.textContent(), /candidate/);
  assert.match(await v1.textContent(), /live/);
  await shot('model-holdout-by-time-1280');
}, 2 * TRAIN_WAIT + 60_000);

step('a decision rule: the version says the threshold its rule chose and what it reaches on the holdout', async () => {
  // 240 reviews, flagged by a noisy rule of two scores: precision and recall
  // trade off along the threshold.
  const start = Date.now() - 10 * 86400e3;
  const iso = (ms) => new Date(ms).toISOString();
  const facts = [];
  let seed = 7;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  for (let i = 0; i < 240; i++) {
    const entity = `review-${i}`, x1 = rand() * 4 - 2, x2 = rand() * 4 - 2;
    facts.push({ stream: 'reviews', entity, time: iso(start + i * 60e3), data: { x1, x2 } });
    facts.push({ stream: 'flags', entity, time: iso(start + i * 60e3 + 30e3), data: { spam: x1 + 0.5 * x2 + (rand() * 2 - 1) > 0.3 } });
  }
  const stored = await http('POST', '/v1/facts', { auth: 'basic', body: facts });
  assert.equal(stored.status, 200, stored.text);
  const put = await http('PUT', '/v1/models/spam', { auth: 'basic', body: {
    task: 'binary', features_from: 'reviews', label: { stream: 'flags', field: 'spam' }, algorithm: 'linear',
    features: [{ field: 'x1' }, { field: 'x2' }], decision: { rule: 'min_precision', target: 0.8 } } });
  assert.equal(put.status, 201, put.text);
  assert.equal((await http('POST', '/v1/models/spam/train', { auth: 'basic' })).status, 202);
  await waitFor('spam v1 stored', async () => (await versionsOf('spam')).some((v) => v.version === 1), TRAIN_WAIT, 500);
  const d = (await versionsOf('spam')).find((v) => v.version === 1).metrics.decision;
  await go('#/models/spam');
  const v1 = page.locator('tr[data-version="1"]');
  await visible(v1);
  const said = page.locator('tr[data-version="1"] .decision');
  assert.equal(await said.textContent(), `threshold ${Number(d.threshold.toPrecision(4))} (min precision 0.8)`);
  assert.match(await said.getAttribute('title'), new RegExp(`^On the ${d.rows} holdout rows: ${d.answered_positive} answered positive, precision ${Number(d.precision.toPrecision(4))} \\[.*, recall ${Number(d.recall.toPrecision(4))} \\[.*, false positive rate .* of ${d.rows - d.positives} negative \\(95% intervals\\)$`));
  const heads = await page.locator('table.versions th').allTextContents();
  assert.ok(!heads.some((t) => /^decision_/.test(t)), `the operating point is not among the metric columns: ${heads.join('|')}`);
  await shot('model-decision-rule-1280');
}, TRAIN_WAIT + 60_000);

step('calibration: the reliability of the probabilities answered, before and after the map', async () => {
  // The spam model (a decision rule, not calibrated) says so; a copy of it
  // calibrated by sigmoid shows both curves.
  await go('#/models/spam');
  await visible(page.locator('#calibration'));
  assert.match(await page.textContent('#calibration-summary'), /^v1 \(live\): Brier score [0-9.]+, calibration error [0-9.]+ \(a perfectly calibrated model's would be about [0-9.]+ by chance\) on \d+ holdout rows; not calibrated/);
  const put = await http('PUT', '/v1/models/spam-calibrated', { auth: 'basic', body: {
    task: 'binary', features_from: 'reviews', label: { stream: 'flags', field: 'spam' }, algorithm: 'linear',
    features: [{ field: 'x1' }, { field: 'x2' }], calibration: 'sigmoid' } });
  assert.equal(put.status, 201, put.text);
  assert.equal((await http('POST', '/v1/models/spam-calibrated/train', { auth: 'basic' })).status, 202);
  await waitFor('spam-calibrated v1 stored', async () => (await versionsOf('spam-calibrated')).some((v) => v.version === 1), TRAIN_WAIT, 500);
  const m = (await versionsOf('spam-calibrated')).find((v) => v.version === 1).metrics;
  await go('#/models/spam-calibrated');
  await visible(page.locator('#calibration table.reliability-bins'));
  assert.equal(await page.textContent('tr[data-version="1"] .calibrated'), 'calibrated (sigmoid)');
  const heads = await page.locator('table.versions th').allTextContents();
  assert.ok(!heads.some((t) => /^(brier|calibration_error)$/i.test(t.trim())), `calibration's metrics are on their card: ${heads.join('|')}`);
  assert.match(await page.textContent('#calibration-summary'),
    new RegExp(`on ${m.reliability.reduce((n, b) => n + b.rows, 0)} holdout rows; calibrated by sigmoid on ${m.calibration.fitted_on_rows} out-of-fold training scores \\(before it: Brier score`));
  const bins = page.locator('#calibration table.reliability-bins tbody tr');
  assert.equal(await bins.count(), 10);
  for (let i = 0; i < 10; i++) {
    assert.equal(Number((await bins.nth(i).locator('td').nth(1).textContent()).replace(/,/g, '')), m.reliability[i].rows, `bin ${i}`);
  }
  // One dot per bin that holds rows, for each curve.
  const filled = (bs) => bs.filter((b) => b.rows > 0).length;
  assert.equal(await page.locator('#calibration svg.reliability circle.dot-metric').count(), filled(m.reliability));
  assert.equal(await page.locator('#calibration svg.reliability circle.dot-before').count(), filled(m.calibration.before.reliability));
  await shot('model-calibration-1280');
  // Live: the calibration error beside what chance alone shows over as many outcomes.
  const instances = Array.from({ length: 40 }, (_, i) => ({ entity: `cal-${i}`, features: { x1: (i % 8) / 2 - 2, x2: (i % 5) - 2 } }));
  const asked = await http('POST', '/v1/models/spam-calibrated/predict', { auth: 'basic', body: { instances } });
  assert.equal(asked.status, 200, asked.text);
  const outcomes = JSON.parse(asked.text).predictions.map((p, i) => ({ stream: 'flags', entity: `cal-${i}`, data: { spam: i % 3 === 0, prediction_id: p.prediction_id } }));
  assert.equal((await http('POST', '/v1/facts', { auth: 'basic', body: outcomes })).status, 200);
  await go('#/deployments/spam-calibrated');
  const liveTable = page.locator('.card', { has: page.locator('h2', { hasText: 'Live metrics' }) }).locator('table');
  await waitFor('the 40 outcomes joined, the calibration error beside its chance level', async () => {
    const heads = (await liveTable.locator('th').allTextContents()).map((t) => t.trim().toLowerCase());
    const col = heads.indexOf('calibration_error');
    if (col < 0) return false;
    const title = await liveTable.locator(`tbody tr:first-child td:nth-child(${col + 1})`).getAttribute('title');
    return /^a perfectly calibrated model's would be about [0-9.]+ by chance over these 40 outcomes$/.test(title || '');
  }, 30_000, 500);
  // And the answers' reliability, drawn from the same bins.
  const liveFig = page.locator('#live-reliability figure[data-version="1"]');
  await visible(liveFig);
  assert.match(await liveFig.locator('figcaption').textContent(), /^v1 \(live\): calibration error [0-9.]+ over 40 outcomes; about [0-9.]+ by chance alone$/);
  const lm = JSON.parse((await http('GET', '/v1/models/spam-calibrated/live-metrics', { auth: 'basic' })).text);
  const g1 = lm.groups.find((g) => g.version === 1 && !g.shadow);
  assert.equal(await liveFig.locator('circle.dot-metric').count(), g1.reliability.filter((b) => b.rows > 0).length);
  await shot('deployments-live-calibration-1280');
  // A regression model has no probability to calibrate: no card.
  await go('#/models/likes');
  await visible(page.locator('table.versions'));
  assert.equal(await page.locator('#calibration').isVisible(), false);
}, TRAIN_WAIT + 60_000);

step('a canary: the experiment the policy started says what decides it, and how it ended', async () => {
  // Version 1 reads x1 alone and goes live at once (nothing to judge a
  // canary against); version 2 reads both, passes its gate and gets a canary.
  const def = (features) => ({ task: 'binary', features_from: 'reviews', label: { stream: 'flags', field: 'spam' },
    algorithm: 'linear', features, promotion: { mode: 'canary', canary: { share: 0.2, entities: 50 } } });
  for (const [features, version] of [[[{ field: 'x1' }], 1], [[{ field: 'x1' }, { field: 'x2' }], 2]]) {
    const put = await http('PUT', '/v1/models/spam-canary', { auth: 'basic', body: def(features) });
    assert.ok([200, 201].includes(put.status), put.text);
    assert.equal((await http('POST', '/v1/models/spam-canary/train', { auth: 'basic' })).status, 202);
    await waitFor(`spam-canary v${version} stored`, async () => (await versionsOf('spam-canary')).some((v) => v.version === version), TRAIN_WAIT, 500);
  }
  const list = JSON.parse((await http('GET', '/v1/models/spam-canary/experiments', { auth: 'basic' })).text).experiments;
  assert.equal(list.length, 1, `the canary's experiment: ${JSON.stringify(list)}`);
  const e = list[0];
  assert.equal(e.canary.version, 2);
  await go('#/models/spam-canary');
  const note = page.locator('#model-experiment p.canary[data-canary="running"]');
  await visible(note);
  assert.match(await note.textContent(), /^canary Canary of v2 against live v1 \(job \d+\): 20(\.0)?\s?% of the requests with an entity\. Once outcomes from 50 entities a side are in, it goes live unless they show it worse than live by more than 0; undecided by .+, it is not published\. Its outcomes so far are on the Deployments page\.$/);
  await go('#/deployments/spam-canary');
  const running = page.locator(`div.card[data-experiment="${e.id}"] p.canary[data-canary="running"]`);
  await visible(running);
  assert.match(await running.textContent(), /it is not published\. No outcome of the canary yet\.$/);
  await shot('deployments-canary-1280');
  // A person ends it: nothing is published, and the page says so.
  const ended = await http('POST', `/v1/models/spam-canary/experiments/${e.id}/end`, { auth: 'basic', body: { reason: 'browser test' } });
  assert.equal(ended.status, 200, ended.text);
  await go('#/models/spam-canary');
  await go('#/deployments/spam-canary');
  const done = page.locator(`div.card[data-experiment="${e.id}"] p.canary[data-canary="ended"]`);
  await visible(done);
  assert.match(await done.textContent(), /Canary of v2 against live v1 \(job \d+\): not published: ended by a person/);
}, 2 * TRAIN_WAIT + 30_000);

step('a binary model: the threshold apart from the metrics, roc_auc within [0, 1], the buttons in view', async () => {
  // The binary metrics Kennel reports (its JSON objects list keys in order),
  // stubbed onto likes' versions.
  const metrics = (auc) => ({ accuracy: 0.95, best_threshold: 0.42, best_threshold_f1: 0.93, f1: 0.92, log_loss: 0.12,
    pr_auc: 0.97, precision: 0.93, recall: 0.91, roc_auc: auc, rows: 400 });
  const modelStub = routeStub((j) => { j.definition.task = 'binary'; });
  const versionsStub = routeStub((j) => j.versions.forEach((v, i) => {
    v.metrics = metrics(0.99 + 0.004 * i);
    v.baseline_metrics = { rows: 400, roc_auc: 0.5, accuracy: 0.6 };
  }));
  await page.route('**/v1/models/likes', modelStub.handler);
  await page.route('**/v1/models/likes/versions', versionsStub.handler);
  try {
    await page.setViewportSize({ width: 1024, height: 800 });
    await go('#/overview');
    await go('#/models/likes');
    await visible(page.locator('table.versions'));
    await visible(page.locator('svg.chart', { hasText: 'roc_auc by version' }));
    const heads = await page.locator('table.versions th').allTextContents();
    assert.ok(heads.includes('roc_auc') && heads.includes('accuracy'), heads.join('|'));
    assert.ok(!heads.some((t) => /threshold/.test(t)), `no threshold among the metric columns: ${heads.join('|')}`);
    assert.match(await page.textContent('table.versions tbody tr:first-child'), /threshold 0\.42 \(F1 0\.93\)/);
    const ticks = (await page.locator('svg.chart text[text-anchor="end"]').allTextContents()).map(Number);
    assert.ok(ticks.length && ticks.every((t) => t >= 0 && t <= 1), `roc_auc axis within [0, 1]: ${ticks}`);
    // The table scrolls inside its card, the page does not, and every Promote stays in view.
    const box = await page.evaluate(() => {
      const wrap = document.querySelector('table.versions').closest('.table-wrap');
      const w = wrap.getBoundingClientRect();
      return { scrolls: wrap.scrollWidth > wrap.clientWidth, wrapRight: w.right, tab: wrap.tabIndex, label: wrap.getAttribute('aria-label'),
        page: document.documentElement.scrollWidth - window.innerWidth,
        buttons: [...wrap.querySelectorAll('button[data-action="promote"]')].map((b) => b.getBoundingClientRect().right) };
    });
    assert.ok(box.scrolls, 'many metric columns: the table is wider than its card');
    assert.ok(box.page <= 0, 'the page itself does not scroll sideways');
    assert.equal(box.tab, 0, 'the scrolling box takes the keyboard focus');
    assert.equal(box.label, 'Versions of likes');
    assert.ok(box.buttons.length && box.buttons.every((r) => r <= box.wrapRight + 1 && r <= 1024), JSON.stringify(box));
    await shot('model-binary-1024');
  } finally {
    await modelStub.unroute('**/v1/models/likes');
    await versionsStub.unroute('**/v1/models/likes/versions');
    await page.setViewportSize({ width: 1280, height: 900 });
    modelStub.finish();
    versionsStub.finish();
  }
});

// The page's scrolling boxes as they stand: whether each scrolls, is a tab
// stop, and is a named region.
const scrollBoxes = () => page.evaluate(() => [...document.querySelectorAll('[data-scrolls]')]
  .filter((el) => el.getClientRects().length)
  .map((el) => ({ data: el.dataset.scrolls, named: el.dataset.scrolls !== '', tab: el.tabIndex, role: el.getAttribute('role'),
    label: el.getAttribute('aria-label'), scrolls: el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1 })));

// axe-core's WCAG 2.1 A and AA rules on a page as it stands: the violations,
// each with its rule and the first elements it names.
async function axeViolations() {
  // As a script of the test's own (not through eval, which the page's CSP
  // refuses).
  if (!await page.evaluate(() => Boolean(window.axe))) await page.evaluate(AXE_SOURCE);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] });
    return r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')})`);
  });
}

step('accessibility: no WCAG 2.1 A/AA violation axe-core can find, on every page and in a dialog', async () => {
  const jobs = await http('GET', '/v1/jobs?limit=1', { auth: 'basic' });
  const pages = [['#/overview', 'Overview'], ['#/streams', 'Streams'], ['#/models', 'Models'],
    ['#/models/likes', 'likes'], ['#/jobs', 'Jobs'], [`#/jobs/${jobs.json.jobs[0].id}`, 'Job'],
    ['#/deployments', 'Deployments'], ['#/keys', 'API keys']];
  const stops = { scrolling: 0, fitting: 0 };
  for (const [hash, heading] of pages) {
    await go(hash);
    await visible(page.locator('h1', { hasText: heading }));
    await page.waitForTimeout(500);  // the view's first refresh
    assert.deepEqual(await axeViolations(), [], hash);
    // A box that scrolls is a named tab stop; one that fits is none.
    for (const b of await scrollBoxes()) {
      assert.equal(b.tab, b.scrolls ? 0 : -1, `${hash}: ${JSON.stringify(b)}`);
      if (b.named) assert.equal(b.role, b.scrolls ? 'region' : null, `${hash}: ${JSON.stringify(b)}`);
      stops[b.scrolls ? 'scrolling' : 'fitting'] += 1;
    }
  }
  assert.ok(stops.fitting > 0, `some box fits its page at 1280 px: ${JSON.stringify(stops)}`);
  await go('#/models/likes');
  await page.click('button[data-action="train"]');
  await visible(page.locator('#dialog'));
  assert.deepEqual(await axeViolations(), [], 'the reason dialog');
  await page.click('#dialog-cancel');
});

step('keyboard: a skip link to the content; a table becomes a tab stop when the page narrows', async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  // The list shows active keys; the earlier step revoked its own.
  const listed = await http('POST', '/v1/keys', { auth: 'basic', body: { name: 'browser-test-table', scopes: ['read'] } });
  assert.equal(listed.status, 201, listed.text);
  await go('#/keys');
  await visible(page.locator('h1', { hasText: 'API keys' }));
  // A fresh load, so the keyboard starts at the top (after a blur() it
  // goes on from where focus was).
  await page.reload({ waitUntil: 'domcontentloaded' });
  await visible(page.locator('tr[data-key]'));
  await page.keyboard.press('Tab');
  assert.equal((await focused()).id, 'skip-link', 'the first stop');
  assert.ok(await page.locator('#skip-link').isVisible(), 'shown once it has focus');
  await page.screenshot({ path: path.join(SHOTS, 'skip-link.png'), clip: { x: 0, y: 0, width: 640, height: 120 } });
  await page.keyboard.press('Enter');
  assert.equal((await focused()).id, 'main');
  assert.equal(await page.evaluate(() => location.hash), '#/keys', 'no route change');
  const keys = async () => (await scrollBoxes()).find((b) => b.data === 'Table: Name, Prefix, Scopes');
  const wide = await keys();
  assert.ok(wide && !wide.scrolls && wide.tab === -1, `the keys table fits at 1280 px and is no stop: ${JSON.stringify(wide)}`);
  await page.setViewportSize({ width: 390, height: 844 });
  await waitFor('the keys table scrolls and takes focus', async () => {
    const b = await keys();
    return b && b.scrolls && b.tab === 0 && b.role === 'region';
  }, WAIT);
  await page.setViewportSize({ width: 1280, height: 900 });
  await waitFor('no stop once it fits again', async () => (await keys()).tab === -1, WAIT);
});

step('phone width: the menu collapses and tables scroll inside their box', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await go('#/overview');
  await visible(page.locator('h1', { hasText: 'Overview' }));
  await visible(page.locator('#menu-button'));
  assert.equal(await page.locator('#nav').isVisible(), false, 'the nav is collapsed');
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(await overflow() <= 0, 'no sideways scrolling of the page on the overview');
  await shot('overview-390');
  await page.click('#menu-button');
  await visible(page.locator('#nav a[data-view="models"]'));
  await shot('menu-390');
  await page.click('#nav a[data-view="models"]');
  await page.locator('#nav').waitFor({ state: 'hidden', timeout: WAIT });
  assert.equal(await page.locator('#menu-button').getAttribute('aria-expanded'), 'false', 'the menu closes after a choice');
  // Choosing the page already shown changes no hash; the menu must close all the same.
  await page.click('#menu-button');
  await visible(page.locator('#nav a[data-view="models"]'));
  await page.click('#nav a[data-view="models"]');
  await page.locator('#nav').waitFor({ state: 'hidden', timeout: WAIT });
  // Escape closes the open menu, and the keyboard is back on its button.
  await page.click('#menu-button');
  await visible(page.locator('#nav a[data-view="models"]'));
  await page.keyboard.press('Escape');
  await page.locator('#nav').waitFor({ state: 'hidden', timeout: WAIT });
  assert.equal(await page.locator('#menu-button').getAttribute('aria-expanded'), 'false');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'menu-button');
  await page.click('table a:has-text("likes")');
  await visible(page.locator('tr[data-version="1"]'));
  await visible(page.locator('svg.chart'));
  assert.ok(await overflow() <= 0, 'no sideways scrolling of the page on a model');
  const wrapScrolls = await page.evaluate(() => {
    const w = document.querySelector('table.versions').closest('.table-wrap');
    return w.scrollWidth > w.clientWidth;
  });
  assert.ok(wrapScrolls, 'the versions table scrolls inside its box');
  await shot('model-390');
  // The newest facts: the data on one readable line, the whole JSON on a click.
  await go('#/streams/posts');
  const data = page.locator('td.data').first();
  await visible(data);
  const cell = await data.evaluate((td) => ({ w: td.getBoundingClientRect().width, h: td.closest('tr').getBoundingClientRect().height }));
  assert.ok(cell.w >= 150 && cell.h <= 60, `the data cell is ${Math.round(cell.w)} px wide, its row ${Math.round(cell.h)} px tall`);
  await data.locator('summary').click();
  await visible(data.locator('pre'));
  assert.match(await data.locator('pre').textContent(), /"breed": /);
  await shot('streams-390');
  // A long model name wraps; the page does not scroll sideways.
  const def = (await http('GET', '/v1/models/likes', { auth: 'basic' })).json.definition;
  const long = 'likes_per_post_predicted_from_breed_hashtags_length_hour_photo_cap'.slice(0, 64);
  const put = await http('PUT', `/v1/models/${long}`, { auth: 'basic', body: def });
  assert.ok(put.status < 300, put.text);
  await go(`#/models/${long}`);
  await visible(page.locator('h1', { hasText: long }));
  assert.ok(await overflow() <= 0, 'no sideways scrolling with a long model name');
  await shot('model-long-name-390');
  // The Deployments page's model picker holds that name: it shrinks to the screen.
  await go(`#/deployments/${long}`);
  await visible(page.locator('#deploy-model'));
  await waitFor('the long name picked', async () => (await page.inputValue('#deploy-model')) === long, WAIT);
  await visible(page.locator('h2', { hasText: 'Aliases now' }));
  assert.ok(await overflow() <= 0, 'no sideways scrolling on Deployments with a long model name');
  const picker = await page.locator('#deploy-model').evaluate((el) => el.getBoundingClientRect().right);
  assert.ok(picker <= 390, `the model picker ends at ${picker} px, inside 390`);
  await shot('deployments-long-name-390');
  // No predictions logged yet: the curl example scrolls sideways, by
  // keyboard too.
  await visible(page.locator('#predictions-empty pre'));
  assert.deepEqual(await axeViolations(), [], 'deployments at 390 px');
  // The picker moved by the arrow keys keeps focus in the page it opens.
  await page.locator('#deploy-model').focus();
  await page.keyboard.press('ArrowUp');
  await waitFor('the previous model', async () => (await page.evaluate(() => location.hash)) !== `#/deployments/${long}`, WAIT);
  await waitFor('focus on the picker', async () => (await focused()).id === 'deploy-model', WAIT);
  await page.setViewportSize({ width: 1280, height: 900 });
});

step('a session that ends: the sign-in form, without the old error messages', async () => {
  // An action the server does not answer says so in its dialog, which stays
  // open with the reason typed (it closed, the reason lost, with a toast).
  await go('#/models/likes');
  await visible(page.locator('button[data-action="train"]'));
  const isTrain = (u) => new URL(u).pathname === '/v1/models/likes/train';
  await page.route(isTrain, (r) => r.abort());
  try {
    await page.click('button[data-action="train"]');
    await visible(page.locator('#dialog'));
    // A reason over the server's 2,000 bytes, in fewer characters than the box allows.
    await page.fill('#dialog-reason', '理'.repeat(700));
    await page.click('#dialog-ok');
    await visible(page.locator('#dialog-error', { hasText: 'at most 2,000 bytes; this one has 2,100' }));
    await page.fill('#dialog-reason', 'browser test: the server does not answer');
    await page.click('#dialog-ok');
    await visible(page.locator('#dialog-error', { hasText: 'Kennel did not answer' }));
    assert.equal(await page.inputValue('#dialog-reason'), 'browser test: the server does not answer');
    assert.equal(await page.locator('#dialog').isVisible(), true, 'the dialog stays open');
    await page.click('#dialog-cancel');
    await page.locator('#dialog').waitFor({ state: 'hidden', timeout: WAIT });
    await page.click('button[data-action="train"]');
    await visible(page.locator('#dialog'));
    await page.click('#dialog-ok');  // no reason: refused in the dialog
    await visible(page.locator('#dialog-error', { hasText: 'Say why' }));
    await page.click('#dialog-cancel');
    await page.locator('#dialog').waitFor({ state: 'hidden', timeout: WAIT });
  } finally {
    await page.unroute(isTrain);
  }
  // The session ends (here: its cookie is gone): the next poll meets a 401.
  await context.clearCookies();
  await visible(page.locator('#signin-form'));
  assert.match(await page.textContent('#signin-message'), /session has ended/);
  assert.equal(await page.locator('#flash > *').count(), 0, 'no message from before on the sign-in form');
  assert.equal(await page.title(), 'Sign in · Kennel');
  await page.fill('#signin-password', PASSWORD);
  await page.click('#signin-submit');
  await visible(page.locator('#shell'));
  await visible(page.locator('h1', { hasText: 'likes' }));
});

step('signed in again in another tab: this tab\'s next action still goes through', async () => {
  // This tab kept the old session's CSRF token, and every write failed
  // ("missing or wrong X-CSRF-Token") until a reload.
  await go('#/models/likes');
  await visible(page.locator('button[data-action="train"]'));
  const other = await context.newPage();
  try {
    await other.goto(server.base + '/', { waitUntil: 'domcontentloaded' });
    await visible(other.locator('#shell'));
    const status = await other.evaluate(async (pw) => {
      const s = await (await fetch('/v1/auth/session')).json();
      await fetch('/v1/auth/logout', { method: 'POST', headers: { 'X-CSRF-Token': s.csrf_token, 'Content-Type': 'application/json' }, body: '{}' });
      const r = await fetch('/v1/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: pw }) });
      return r.status;
    }, PASSWORD);
    assert.equal(status, 200);
  } finally {
    await other.close();
  }
  await page.click('button[data-action="train"]');
  await confirmDialog('browser test: after signing in again in another tab');
  await visible(page.locator('#flash .alert.success', { hasText: /training job \d+|already queued/ }));
  assert.equal(await page.locator('#flash .alert.error').count(), 0);
});

step('signing out ends the session: the page and the API refuse', async () => {
  await go('#/overview');
  await page.click('#signout');
  await visible(page.locator('#signin-form'));
  assert.match(await page.textContent('#signin-message'), /signed out/);
  assert.equal(await pageFetch('/v1/models'), 401);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await visible(page.locator('#signin-form'));
  assert.equal(await page.locator('#shell').isVisible(), false);
  await shot('signin-1280');
});

step('no page errors and no CSP violations', async () => {
  assert.deepEqual(pageErrors, []);
});
