// Swagger UI as a developer uses it: load /docs, authorize with a bearer token, open a route,
// "Try it out", execute, and read the live response; then the same for a write (a note on a
// job: a JSON body and an Idempotency-Key), which must answer 201. The token needs jobs:read
// and jobs:write; the database must be writable. Exits non-zero on any failure.
//   node try-it-out.mjs BASE_URL TOKEN SCREENSHOT_PATH
import { chromium } from 'playwright-core';

const [base, token, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const fail = async (msg) => {
  console.error(`try-it-out: ${msg}`);
  await browser.close();
  process.exit(1);
};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  await page.goto(`${base}/docs/`);
  await page.waitForSelector('.opblock', { timeout: 15000 });
  const listed = () => page.$$eval('.opblock-summary-path', (els) => els.map((e) => e.getAttribute('data-path')));
  // The newest version opens first; the selector holds every version.
  let paths = await listed();
  if (!paths.includes('/v2/jobs/{job_number}')) await fail(`Swagger UI does not open with v2: ${paths}`);
  await page.selectOption('.topbar select', { label: 'v1' });
  await page.waitForSelector('.opblock-summary-path[data-path="/v1/jobs"]', { timeout: 15000 });
  paths = await listed();
  for (const p of ['/v1/jobs', '/v1/jobs/{job_number}', '/v1/jobs/{job_number}/operations',
    '/v1/customers', '/v1/customers/{customer_number}', '/v1/customers/{customer_number}/jobs',
    '/v1/jobs/{job_number}/notes', '/v1/jobs/{job_number}/notes/{sequence}', '/v1/orders',
    '/v1/orders/{order_number}']) {
    if (!paths.includes(p)) await fail(`Swagger UI does not list ${p} under v1: ${paths}`);
  }
  console.log('Swagger UI: v2 opens first; v1 lists every demo route');
  // Authorize with the bearer token.
  await page.click('.auth-wrapper button.authorize');
  const bearer = page.locator('.auth-container').filter({ hasText: 'bearerAuth' });
  await bearer.locator('input').first().fill(token);
  await bearer.locator('button.authorize').click();
  await page.click('.auth-btn-wrapper button.btn-done');
  // Try getJob.
  const op = page.locator('#operations-jobs-getJob');
  await op.locator('.opblock-summary').click();
  // The gateway's Swagger UI opens operations ready to try (tryItOutEnabled); press
  // "Try it out" only when it is not.
  const execute = op.locator('button.execute');
  try {
    await execute.waitFor({ timeout: 3000 });
  } catch {
    await op.locator('button.try-out__btn').click();
    await execute.waitFor({ timeout: 5000 });
  }
  await op.locator('input[placeholder="job_number"]').fill('100001');
  await execute.click();
  const status = op.locator('.live-responses-table tbody .response-col_status').first();
  await status.waitFor({ timeout: 15000 });
  const code = (await status.textContent()).trim();
  const body = await op.locator('.live-responses-table tbody .response-col_description').first().textContent();
  if (code !== '200') await fail(`expected 200, got ${code}: ${body}`);
  if (!body.includes('WIDGET BRACKET, ZINC PLATED')) await fail(`unexpected body: ${body}`);
  console.log(`Swagger UI: authorized, tried getJob, got ${code} with the job`);

  // Try addJobNote: a POST with a JSON body typed into the request body editor.
  await op.locator('.opblock-summary').click(); // close getJob again
  const post = page.locator('#operations-jobs-addJobNote');
  await post.locator('.opblock-summary').click();
  const send = post.locator('button.execute');
  try {
    await send.waitFor({ timeout: 3000 });
  } catch {
    await post.locator('button.try-out__btn').click();
    await send.waitFor({ timeout: 5000 });
  }
  await post.locator('input[placeholder="job_number"]').fill('100001');
  const key = `swagger-ui-${Date.now()}`;
  await post.locator('input[placeholder="Idempotency-Key"]').fill(key);
  const text = `Tried out in Swagger UI ${key.slice(-6)}`;
  await post.locator('textarea.body-param__text').fill(
    JSON.stringify({ text, follow_up_on: '2025-03-04' }, null, 2));
  await send.click();
  const postStatus = post.locator('.live-responses-table tbody .response-col_status').first();
  await postStatus.waitFor({ timeout: 15000 });
  const postCode = (await postStatus.textContent()).trim();
  const postBody = await post.locator('.live-responses-table tbody .response-col_description').first().textContent();
  if (shot) await page.screenshot({ path: shot, fullPage: false });
  if (postCode !== '201') await fail(`addJobNote: expected 201, got ${postCode}: ${postBody}`);
  if (!postBody.includes(text) || !postBody.includes('/v1/jobs/100001/notes/')) {
    await fail(`addJobNote: unexpected answer (the note and its Location): ${postBody}`);
  }
  console.log(`Swagger UI: tried addJobNote with a JSON body, got ${postCode} with the note and its Location`);
} catch (e) {
  await fail(e.stack ?? String(e));
}
await browser.close();
