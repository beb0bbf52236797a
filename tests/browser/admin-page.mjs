// The admin page as an operator uses it: a queued write that cannot be delivered (a note on a
// job that does not exist) becomes a dead letter; the page, given a token with patina:admin,
// shows the queue and the letter with its error and request; Replay puts it back (it dies
// again), Drop removes it. Exits non-zero on any failure.
//   node admin-page.mjs BASE_URL ADMIN_TOKEN WRITER_TOKEN SCREENSHOT_PATH
import { chromium } from 'playwright-core';

const [base, adminToken, writerToken, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const fail = async (msg) => {
  console.error(`admin-page: ${msg}`);
  await browser.close();
  process.exit(1);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  // A write the database will refuse for good: job 999999999 does not exist.
  const text = `admin page ${Date.now()}`;
  const res = await fetch(`${base}/v1/jobs/999999999/notes/queued`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${writerToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  if (res.status !== 202) await fail(`queued write: expected 202, got ${res.status}`);
  const href = res.headers.get('location');
  let delivery;
  for (let i = 0; i < 100; i++) {
    delivery = await (await fetch(`${base}${href}`, { headers: { Authorization: `Bearer ${writerToken}` } })).json();
    if (delivery.status !== 'pending') break;
    await sleep(100);
  }
  if (delivery.status !== 'dead') await fail(`expected a dead letter: ${JSON.stringify(delivery)}`);

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('dialog', (d) => d.accept());
  await page.goto(`${base}/_patina/`);
  await page.fill('#credential', adminToken);
  await page.click('#login button[type=submit]');
  const row = page.locator(`#letters tbody tr[data-id="${delivery.id}"]`);
  await row.waitFor({ timeout: 10000 });
  const shown = await row.textContent();
  if (!shown.includes('queueJobNote') || !shown.includes(text) || !shown.includes('not-found')) {
    await fail(`the letter's row lacks its route, request or error: ${shown}`);
  }
  const totals = await page.textContent('#totals');
  if (!/dead letter/.test(totals)) await fail(`no queue totals: ${totals}`);
  const routes = await page.textContent('#routes tbody');
  if (!routes.includes('queueJobNote')) await fail(`queue table lacks the route: ${routes}`);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  console.log('admin page: the dead letter is listed with its route, request and error');

  await row.locator('button', { hasText: 'Replay' }).click();
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Replayed'));
  console.log('admin page: Replay put the letter back in the queue');
  // It dies again (the job still does not exist): wait for that, then show the list again.
  for (let i = 0; ; i++) {
    const d = await (await fetch(`${base}/_patina/api/deliveries/${delivery.id}`, {
      headers: { Authorization: `Bearer ${adminToken}` },
    })).json();
    const outcomes = (d.history || []).map((h) => h.outcome);
    if (d.status === 'dead' && outcomes.includes('replayed') && outcomes.at(-1) === 'not-found') break;
    if (i > 100) await fail(`the replayed letter did not die again: ${JSON.stringify(d)}`);
    await sleep(100);
  }
  await page.click('#refresh');
  await page.waitForFunction((id) => {
    const r = document.querySelector(`#letters tbody tr[data-id="${id}"]`);
    return r && r.textContent.includes('replayed') === false && r.textContent.includes('not-found');
  }, delivery.id, { timeout: 10000 });
  await row.locator('button', { hasText: 'Drop' }).click();
  await row.waitFor({ state: 'detached', timeout: 10000 });
  const gone = await fetch(`${base}/_patina/api/deliveries/${delivery.id}`, {
    headers: { Authorization: `Bearer ${adminToken}` },
  });
  if (gone.status !== 404) await fail(`dropped letter still there: ${gone.status}`);
  console.log('admin page: Drop removed the letter for good');
} catch (e) {
  await fail(e.stack ?? String(e));
}
await browser.close();
