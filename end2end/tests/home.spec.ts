import { test, expect } from '@playwright/test';

test('the home page is server-rendered', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Chorus' })).toBeVisible();
  await expect(page).toHaveTitle('Chorus');
  await context.close();
});

test('the WASM client loads and hydrates without errors', async ({ page }, testInfo) => {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  const wasm = page.waitForResponse((response) => response.url().endsWith('/pkg/chorus.wasm'));

  await page.goto('/');
  expect((await wasm).status()).toBe(200);
  await page.waitForLoadState('networkidle');
  await expect(page.getByRole('heading', { name: 'Chorus' })).toBeVisible();
  expect(problems).toEqual([]);
  await page.screenshot({ path: testInfo.outputPath('home.png'), fullPage: true });
});
