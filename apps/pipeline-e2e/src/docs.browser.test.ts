import { existsSync } from 'node:fs';
import { waitFor } from '@gpu-telemetry/harness';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startSystem, type System } from './pipeline';

/**
 * The API docs page as a user meets it: served by the gateway from local assets, listing the whole
 * system's operations, and able to call the API once authorized with a key.
 */
const ADMIN = 'browser-e2e-admin-key-0123456789abcdefgh';
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
let system: System;
let browser: Browser;
let page: Page;
const requested: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`No Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH.`);
  }
  system = await startSystem({ hosts: 1, gpusPerHost: 2, adminKey: ADMIN });
  await system.pipeline.collector.scrapeLoop.runRound();
  await waitFor('GPUs stored', async () => {
    const res = await fetch(`${system.url}/api/v1/gpus`, { headers: { 'x-api-key': ADMIN } });
    return ((await res.json()) as { gpus?: unknown[] }).gpus?.length === 2;
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
  page.on('request', (request) => requested.push(request.url()));
  await page.goto(`${system.url}/docs`);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await system?.close();
});

/** The answer the page shows for the last call it made, under the operation. */
const liveResponse = () => gpusOperation().locator('.live-responses-table tbody tr.response').first();

/** The GET /api/v1/gpus block of the page. */
const gpusOperation = () => page.locator('.opblock-get', { has: page.locator('[data-path="/api/v1/gpus"]') });

describe('the API docs page', () => {
  it('lists every service’s operations under the gateway’s paths, loading nothing from elsewhere', async () => {
    await page.locator('.opblock').first().waitFor();
    expect(await page.title()).toBe('gpu-telemetry API');
    const paths = await page
      .locator('.opblock-summary-path')
      .evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-path')));
    expect(paths).toEqual(
      expect.arrayContaining([
        '/api/v1/gpus',
        '/api/v1/gpus/{gpuId}/telemetry',
        '/api/v1/topics/{topic}/messages',
        '/api/v1/topics/{topic}/leases',
        '/api/v1/targets',
        '/api/v1/keys',
      ]),
    );
    // Swagger UI, its styles and the document all come from the gateway itself: no CDN.
    expect(requested.length).toBeGreaterThan(2);
    expect(requested.filter((url) => !url.startsWith(system.url))).toEqual([]);
  });

  it('calls the API from the page: 401 without a key, the GPUs once authorized', async () => {
    await gpusOperation().locator('.opblock-summary').click();
    await gpusOperation().locator('button.try-out__btn').click();

    const refused = page.waitForResponse((res) => res.url().startsWith(`${system.url}/api/v1/gpus`));
    await gpusOperation().locator('button.execute').click();
    expect((await refused).status()).toBe(401);
    // The page shows the answer it got.
    await liveResponse().locator('.response-col_status', { hasText: '401' }).waitFor();

    await page.locator('.auth-wrapper button.authorize').click();
    const modal = page.locator('.modal-ux');
    await modal.locator('input[type="text"]').first().fill(ADMIN);
    await modal.locator('.auth-btn-wrapper button.authorize').first().click();
    await modal.locator('button.btn-done').first().click();

    const served = page.waitForResponse((res) => res.url().startsWith(`${system.url}/api/v1/gpus`));
    await gpusOperation().locator('button.execute').click();
    const response = await served;
    expect(response.status()).toBe(200);
    const body = (await response.json()) as { gpus: { id: string; hostname: string }[] };
    expect(body.gpus).toHaveLength(2);
    await liveResponse().locator('.response-col_status', { hasText: '200' }).waitFor();
    const shown = await liveResponse().locator('.response-col_description').innerText();
    for (const gpu of body.gpus) expect(shown).toContain(gpu.id);
  });
});
