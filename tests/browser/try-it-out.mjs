// Swagger UI as a developer uses it: load /docs, authorize with a bearer token, open a route,
// "Try it out", execute, and read the live response. Exits non-zero on any failure.
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
  const paths = await page.$$eval('.opblock-summary-path', (els) => els.map((e) => e.getAttribute('data-path')));
  for (const p of ['/v1/jobs/{job_number}', '/v1/jobs', '/v1/customers/{customer_number}']) {
    if (!paths.includes(p)) await fail(`Swagger UI does not list ${p}: ${paths}`);
  }
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
  if (shot) await page.screenshot({ path: shot, fullPage: false });
  if (code !== '200') await fail(`expected 200, got ${code}: ${body}`);
  if (!body.includes('WIDGET BRACKET, ZINC PLATED')) await fail(`unexpected body: ${body}`);
  console.log(`Swagger UI: authorized, tried getJob, got ${code} with the job`);
} catch (e) {
  await fail(e.stack ?? String(e));
}
await browser.close();
