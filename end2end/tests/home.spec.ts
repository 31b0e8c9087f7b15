import { test, expect } from '@playwright/test';
import { collectProblems, expectNoProblems, member, openRoom, signIn } from './support';

test('the home page is server-rendered', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Chorus', level: 1 })).toBeVisible();
  await expect(page).toHaveTitle('Chorus');
  await expect(page.getByLabel('Display name')).toBeVisible();
  // Disabled until the WASM is live: submitted as a plain form, the name would land
  // in a URL, and hydration would wipe what was typed.
  await expect(page.getByLabel('Display name')).toBeDisabled();
  await expect(page.getByRole('button', { name: 'Continue' })).toBeDisabled();
  await context.close();
});

test('the sign-in form comes alive with the WASM, not before', async ({ page }) => {
  collectProblems(page);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route(/\/pkg\/chorus(\.[\w-]+)?\.wasm$/, async (route) => {
    await held;
    await route.continue();
  });
  await page.goto('/');
  const name = page.getByLabel('Display name');
  await expect(name).toBeDisabled();
  await expect(page.getByRole('button', { name: 'Continue' })).toBeDisabled();
  release();
  await expect(name).toBeEnabled();
  await name.fill('Patient');
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.locator('.me')).toHaveText('Patient');
  await expect(page.getByLabel('Room name')).toBeEnabled();
  expectNoProblems(page);
});

test('the WASM client hydrates without errors', async ({ page }, testInfo) => {
  collectProblems(page);
  const wasm = page.waitForResponse((response) => /\/pkg\/chorus(\.[\w-]+)?\.wasm$/.test(response.url()));
  await page.goto('/');
  expect((await wasm).status()).toBe(200);
  await page.waitForLoadState('networkidle');
  await expect(page.getByRole('heading', { name: 'Chorus', level: 1 })).toBeVisible();
  expectNoProblems(page);
  await page.screenshot({ path: testInfo.outputPath('home-signed-out.png'), fullPage: true });
});

test('names and room names are validated inline', async ({ page }, testInfo) => {
  collectProblems(page);
  await page.goto('/');
  await page.locator('body[data-hydrated]').waitFor();
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.locator('#display-name-error')).toHaveText('Name is empty');
  await expect(page.getByLabel('Display name')).toHaveAttribute('aria-invalid', 'true');

  await signIn(page, 'Validator');
  const roomName = page.getByLabel('Room name');
  await roomName.fill('no spaces please');
  await roomName.press('Enter');
  await expect(page.locator('#room-name-error')).toContainText("only contain letters, digits");
  await expect(page).toHaveURL(/\/$/);
  await page.screenshot({ path: testInfo.outputPath('home-signed-in.png'), fullPage: true });

  await roomName.fill('validated-room');
  await roomName.press('Enter');
  await expect(page).toHaveURL(/\/room\/validated-room$/);
  await expect(page.getByRole('heading', { name: '#validated-room' })).toBeVisible();
  expectNoProblems(page);
});

test('a room page without a session asks for a name, then returns to the room', async ({ page }) => {
  collectProblems(page);
  await page.goto('/room/straight-in');
  await expect(page).toHaveURL(/\/\?room=straight-in$/);
  await page.getByLabel('Display name').fill('Walk-in');
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page).toHaveURL(/\/room\/straight-in$/);
  await expect(page.locator('.badges [data-state]')).toHaveAttribute('data-state', 'live');
  expectNoProblems(page);
});

test('active rooms are listed with their members and can be joined from the list', async ({ browser }) => {
  const host = await member(browser, 'Host');
  await openRoom(host, 'listed-room');
  const guest = await member(browser, 'Guest');
  const link = guest.getByRole('link', { name: /listed-room/ });
  await expect(link).toContainText('1 member');
  await link.click();
  await expect(guest).toHaveURL(/\/room\/listed-room$/);
  await expect(guest.locator('.badges [data-state]')).toHaveAttribute('data-state', 'live');
  await expect(guest.locator('.members li')).toHaveText(['Guest (you)', 'Host']);
  expectNoProblems(guest);
});

test('the room list shows the newest fetch: an older answer arriving late is dropped', async ({ browser }) => {
  const host = await member(browser, 'Host');
  await openRoom(host, 'fresh-room');
  const context = await browser.newContext();
  const page = await context.newPage();
  collectProblems(page);
  // The first fetch of the list is held; every later one goes to the server, except
  // the last, which is answered here.
  let fetches = 0;
  let releaseFirst!: () => void;
  const first = new Promise<void>((resolve) => (releaseFirst = resolve));
  let firstAnswered!: () => void;
  const firstDone = new Promise<void>((resolve) => (firstAnswered = resolve));
  let answerLast = false;
  await page.route('**/api/rooms', async (route) => {
    fetches += 1;
    if (fetches === 1) {
      await first;
      await route.fulfill({ json: [] });
      firstAnswered();
    } else if (answerLast) {
      await route.fulfill({ json: [{ name: 'later-room', members: 2, connections: 2 }] });
    } else {
      await route.continue();
    }
  });
  await signIn(page, 'Watcher');
  await expect(page.getByText('Loading rooms…')).toBeVisible();
  await page.getByRole('button', { name: 'Refresh' }).click();
  await expect(page.getByRole('link', { name: /fresh-room/ })).toContainText('1 member');
  // From here on, an empty list ever shown is the late answer shown over the new.
  await page.evaluate(() => {
    const seen = { empty: false };
    (window as unknown as { seen: typeof seen }).seen = seen;
    new MutationObserver(() => {
      const notes = document.querySelectorAll<HTMLElement>('.active-rooms p');
      if ([...notes].some((note) => !note.hidden && note.textContent?.includes('No active rooms'))) seen.empty = true;
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  releaseFirst();
  await firstDone;
  answerLast = true;
  await page.getByRole('button', { name: 'Refresh' }).click();
  await expect(page.getByRole('link', { name: /later-room/ })).toContainText('2 members');
  expect(await page.evaluate(() => (window as unknown as { seen: { empty: boolean } }).seen.empty)).toBe(false);
  await expect(page.getByRole('link', { name: /fresh-room/ })).toHaveCount(0);
  expectNoProblems(page);
  await context.close();
});

test('with site storage blocked, signing in works for the tab, says so, and never loops', async ({ page, baseURL }) => {
  collectProblems(page);
  // As when the browser blocks site data: reading localStorage throws.
  await page.addInitScript(() => {
    Object.defineProperty(window, 'localStorage', {
      get() {
        throw new DOMException('The operation is insecure.', 'SecurityError');
      },
    });
  });
  let tokens = 0;
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/api/token') tokens += 1;
  });
  await page.goto('/?room=blocked');
  await page.locator('body[data-hydrated]').waitFor();
  await page.getByLabel('Display name').fill('Private');
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page).toHaveURL(`${baseURL}/room/blocked`);
  await expect(page.locator('.badges [data-state]')).toHaveAttribute('data-state', 'live');
  await expect(page.locator('.storage-note')).toContainText('only until this page is reloaded');
  const input = page.getByLabel('Message', { exact: true });
  await input.fill('no storage needed');
  await input.press('Enter');
  await expect(page.locator('.messages .message .text')).toHaveText(['no storage needed']);
  await expect(page).toHaveURL(`${baseURL}/room/blocked`);
  expect(tokens).toBe(1);
  expectNoProblems(page);
});

test('pages carry a nonce-based Content-Security-Policy and the hydration script runs under it', async ({ page }) => {
  collectProblems(page);
  const violations: string[] = [];
  await page.exposeFunction('reportViolation', (text: string) => violations.push(text));
  await page.addInitScript(() =>
    document.addEventListener('securitypolicyviolation', (event) =>
      (window as unknown as { reportViolation: (text: string) => void }).reportViolation(
        `${event.violatedDirective} ${event.blockedURI}`,
      ),
    ),
  );
  const response = await page.goto('/');
  const headers = response!.headers();
  const policy = headers['content-security-policy'];
  const nonce = /'nonce-([^']+)'/.exec(policy)?.[1];
  expect(nonce).toBeTruthy();
  expect(policy).not.toContain('unsafe-inline');
  expect(policy).toContain("frame-ancestors 'none'");
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('no-referrer');
  // The hydration script carries this response's nonce, and the page comes alive.
  expect(await response!.text()).toContain(`nonce="${nonce}"`);
  await page.locator('body[data-hydrated]').waitFor();
  // A new page, a new nonce.
  const again = (await page.request.get('/')).headers()['content-security-policy'];
  expect(again).not.toBe(policy);
  // Script injected without the nonce does not run.
  await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.injected = true';
    document.body.append(script);
  });
  expect(await page.evaluate(() => (window as unknown as { injected?: boolean }).injected)).toBeUndefined();
  await expect.poll(() => violations.length).toBeGreaterThan(0);
  expect(violations.every((violation) => violation.startsWith('script-src'))).toBe(true);
});
