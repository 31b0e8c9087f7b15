import AxeBuilder from '@axe-core/playwright';
import { test, expect, type Page } from '@playwright/test';
import {
  ChorusServer,
  badge,
  collectProblems,
  expectNoProblems,
  expectState,
  holdReconnects,
  member,
  messages,
  openRoom,
  say,
  sayDelivered,
  signIn,
  withServer,
} from './support';

test.describe.configure({ mode: 'serial' });

/** WCAG 2.2 A and AA, every rule axe checks for them; none is disabled. */
async function violations(page: Page) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze();
  return results.violations.map((violation) => ({
    id: violation.id,
    help: violation.help,
    nodes: violation.nodes.map((node) => `${node.target.join(' ')}: ${node.failureSummary}`),
  }));
}

/** What screen readers are told about arriving messages. */
function news(page: Page) {
  return page.getByRole('log', { name: 'New messages' }).locator('p');
}

test('the home page has no accessibility violations, signed out and signed in', async ({ page }) => {
  collectProblems(page);
  await page.goto('/');
  await page.locator('body[data-hydrated]').waitFor();
  expect(await violations(page)).toEqual([]);
  await signIn(page, 'Reader');
  await expect(page.locator('.active-rooms').getByText(/No active rooms|member/).filter({ visible: true }).first()).toBeVisible();
  expect(await violations(page)).toEqual([]);
  expectNoProblems(page);
});

for (const [device, options] of [
  ['desktop', { viewport: { width: 1280, height: 800 } }],
  ['phone', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }],
] as const) {
  test(`a room with messages has no accessibility violations (${device})`, async ({ browser }) => {
    const other = await member(browser, 'Bob');
    await openRoom(other, `a11y-${device}`);
    const context = await browser.newContext(options);
    const page = await context.newPage();
    collectProblems(page);
    await signIn(page, 'Alice');
    await openRoom(page, `a11y-${device}`);
    await sayDelivered(page, 'Hello, everyone');
    await say(other, 'Hi Alice!');
    await expect(page.locator('.messages .message')).toHaveCount(2);
    // A list of messages, each an item (a live region on the list took that away):
    // the day's heading, the join line and the two messages.
    await expect(page.getByRole('list', { name: 'Messages', exact: true }).getByRole('listitem')).toHaveCount(4);
    await expect(page.getByRole('heading', { name: 'Today', level: 2 })).toBeVisible();
    expect(await violations(page)).toEqual([]);
    for (const scheme of ['dark', 'light'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      expect(await violations(page)).toEqual([]);
    }
    if (device === 'phone') {
      // The room list, opened as a drawer over the page.
      await page.getByRole('button', { name: 'Rooms' }).click();
      await expect(page.locator('#rooms-drawer')).toBeVisible();
      expect(await violations(page)).toEqual([]);
    }
    expectNoProblems(page);
    await context.close();
    await other.context().close();
  });
}

test('reconnecting: no violations, the attempt in the text, and the state announced once, not every second', async ({ browser }) => {
  await withServer(new ChorusServer(3211), async (server) => {
    const page = await member(browser, 'Listener', server.url);
    await page.goto('/room/announcements');
    await expectState(page, 'live');
    const status = page.getByRole('status');
    await expect(status).toHaveText('In #announcements: live');
    // Every text the status region and the badge show from here on.
    await page.evaluate(() => {
      const seen = { status: [] as string[], badge: [] as string[] };
      (window as unknown as { seen: typeof seen }).seen = seen;
      const watch = (element: Element, into: string[]) =>
        new MutationObserver(() => {
          const text = element.textContent ?? '';
          if (into[into.length - 1] !== text) into.push(text);
        }).observe(element, { subtree: true, childList: true, characterData: true });
      watch(document.querySelector('[role="status"]')!, seen.status);
      watch(document.querySelector('.badges [data-state]')!, seen.badge);
    });
    await server.stop();
    await expectState(page, 'reconnecting');
    await expect(badge(page)).toHaveText(/^Reconnecting in \d+ s \(attempt \d+\)$/);
    // Several attempts, and a countdown between them.
    await expect(badge(page)).toHaveText(/\(attempt ([3-9]|\d{2,})\)$/, { timeout: 15_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: { status: string[]; badge: string[] } }).seen);
    expect(seen.badge.length).toBeGreaterThan(3);
    expect(seen.status).toEqual(['Connection to #announcements lost: reconnecting']);
    expect(await violations(page)).toEqual([]);
    await server.start();
    await expectState(page, 'live', 20_000);
    await expect(status).toHaveText('In #announcements: live');
    await page.context().close();
  });
});

test('only messages that arrive live are read out: not the history, not a backlog, not your own', async ({ browser }) => {
  const bob = await member(browser, 'Bob');
  await openRoom(bob, 'read-out');
  await sayDelivered(bob, 'history one');
  await sayDelivered(bob, 'history two');
  const alice = await member(browser, 'Alice');
  const { sockets, release } = await holdReconnects(alice);
  await openRoom(alice, 'read-out');
  await expect(messages(alice)).toHaveText(['history one', 'history two']);
  await sayDelivered(bob, 'live one');
  await expect(news(alice)).toHaveText(['Bob: live one']);
  await sayDelivered(alice, 'my own');
  await sayDelivered(bob, 'live two');
  await expect(news(alice)).toHaveText(['Bob: live one', 'Bob: live two']);

  // Away: what was sent meanwhile comes back with the reconnect, shown, not read out.
  await sockets[0].route.close({ code: 4008, reason: 'Too slow to keep up' });
  await expect.poll(() => sockets.length).toBe(2);
  await sayDelivered(bob, 'while away');
  release();
  await expectState(alice, 'live');
  await expect(messages(alice)).toHaveText(['history one', 'history two', 'live one', 'my own', 'live two', 'while away']);
  await sayDelivered(bob, 'live three');
  await expect(messages(alice).last()).toHaveText('live three');
  await expect(news(alice)).toHaveText(['Bob: live one', 'Bob: live two', 'Bob: live three']);
  expectNoProblems(alice);
});

test('focus goes to the next step: the room name after signing in, the composer on arriving in a room', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  collectProblems(page);
  await signIn(page, 'Keyboard');
  await expect(page.getByLabel('Room name')).toBeFocused();
  await page.keyboard.type('first-room');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/room\/first-room$/);
  await expect(page.getByLabel('Message', { exact: true })).toBeFocused();
  await expectState(page, 'live');
  await expect(page.getByRole('status')).toHaveText('In #first-room: live');

  // Another room, from the room list beside the chat.
  const other = await member(browser, 'Host');
  await openRoom(other, 'second-room');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.getByRole('link', { name: /second-room/ }).click();
  await expect(page).toHaveURL(/\/room\/second-room$/);
  await expect(page.getByLabel('Message', { exact: true })).toBeFocused();
  await expect(page.getByRole('status')).toHaveText('In #second-room: live');

  // Signing in on the way to a room lands in its composer.
  const direct = await (await browser.newContext()).newPage();
  collectProblems(direct);
  await direct.goto('/room/third-room');
  await expect(direct).toHaveURL(/\/\?room=third-room$/);
  await direct.locator('body[data-hydrated]').waitFor();
  await direct.getByLabel('Display name').fill('Straight');
  await direct.getByLabel('Display name').press('Enter');
  await expect(direct).toHaveURL(/\/room\/third-room$/);
  await expect(direct.getByLabel('Message', { exact: true })).toBeFocused();
  expectNoProblems(page);
  expectNoProblems(direct);
});

/** Contrast ratio of two CSS colours (`rgb(…)`), as WCAG defines it. */
function contrast(a: string, b: string): number {
  const luminance = (color: string) => {
    const [r, g, bl] = color.match(/\d+(\.\d+)?/g)!.slice(0, 3).map(Number).map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

test('field edges stand out 3:1 and status colours read 4.5:1, in light and dark', async ({ page }) => {
  collectProblems(page);
  await signIn(page, 'Contrast');
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const colors = await page.evaluate(() => {
      const style = (element: Element) => getComputedStyle(element);
      const input = document.querySelector('#room-name')!;
      const card = input.closest('.card')!;
      // The colours statuses and notes are drawn in, on each background they sit on.
      const probe = (variable: string) => {
        const span = document.createElement('span');
        span.style.color = `var(${variable})`;
        document.body.append(span);
        const color = style(span).color;
        span.remove();
        return color;
      };
      return {
        border: style(input).borderTopColor,
        field: style(input).backgroundColor,
        panel: style(card).backgroundColor,
        page: style(document.body).backgroundColor,
        own: probe('--own'),
        texts: [probe('--live'), probe('--warn'), probe('--bad'), probe('--muted')],
      };
    });
    expect(contrast(colors.border, colors.field), `${scheme}: field edge on the field`).toBeGreaterThanOrEqual(3);
    expect(contrast(colors.border, colors.panel), `${scheme}: field edge on the panel`).toBeGreaterThanOrEqual(3);
    for (const text of colors.texts) {
      for (const background of [colors.panel, colors.page]) {
        expect(contrast(text, background), `${scheme}: ${text} on ${background}`).toBeGreaterThanOrEqual(4.5);
      }
    }
  }
  expectNoProblems(page);
});

for (const [device, options, least] of [
  ['desktop', { viewport: { width: 1280, height: 800 } }, 24],
  ['phone', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }, 44],
] as const) {
  test(`small text buttons are at least ${least} px targets (${device})`, async ({ browser }) => {
    const page = await (await browser.newContext(options)).newPage();
    collectProblems(page);
    await signIn(page, 'Thumb');
    for (const name of ['Sign out', 'Refresh']) {
      const box = (await page.getByRole('button', { name }).boundingBox())!;
      expect(box.width, name).toBeGreaterThanOrEqual(least);
      expect(box.height, name).toBeGreaterThanOrEqual(least);
    }
    expectNoProblems(page);
  });
}
