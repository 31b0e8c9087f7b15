import { test, expect, type WebSocketRoute } from '@playwright/test';
import {
  API_KEY,
  ChorusServer,
  badge,
  collectProblems,
  tokenClaims,
  watchSockets,
  expectNoProblems,
  expectState,
  member,
  messages,
  openRoom,
  say,
  sayDelivered,
  withServer,
} from './support';

test('each message goes out with its own ref and is acknowledged with its id', async ({ browser }) => {
  const page = await member(browser, 'Reffer');
  const sent: Record<string, unknown>[] = [];
  const received: Record<string, unknown>[] = [];
  page.on('websocket', (ws) => {
    ws.on('framesent', (frame) => sent.push(JSON.parse(String(frame.payload))));
    ws.on('framereceived', (frame) => received.push(JSON.parse(String(frame.payload))));
  });
  await openRoom(page, 'refs');
  await say(page, 'first');
  await say(page, 'second');
  await expect(messages(page)).toHaveText(['first', 'second']);
  const outgoing = sent.filter((frame) => frame.type === 'message');
  expect(outgoing.map((frame) => frame.content)).toEqual(['first', 'second']);
  const refs = outgoing.map((frame) => frame.ref as string);
  expect(refs[0]).toMatch(/^.{1,64}$/);
  expect(refs[1]).not.toBe(refs[0]);
  await expect.poll(() => received.filter((frame) => frame.type === 'ack').map((frame) => frame.ref)).toEqual(refs);
  const ids = Object.fromEntries(
    received.filter((frame) => frame.type === 'message').map((frame) => [frame.content, frame.id]),
  );
  const acks = received.filter((frame) => frame.type === 'ack');
  expect(acks.map((frame) => frame.id)).toEqual([ids.first, ids.second]);
  expectNoProblems(page);
});

test('two users both named Alice are told apart: each sees only their own messages as theirs', async ({ browser }) => {
  const first = await member(browser, 'Alice');
  const second = await member(browser, 'Alice');
  await openRoom(first, 'twins');
  await openRoom(second, 'twins');
  for (const page of [first, second]) {
    await expect(page.locator('.members li')).toHaveCount(2);
    await expect(page.locator('.members li.own')).toHaveCount(1);
  }
  await sayDelivered(first, 'from the first');
  await sayDelivered(second, 'from the second');
  for (const page of [first, second]) {
    await expect(messages(page)).toHaveText(['from the first', 'from the second']);
  }
  await expect(first.locator('.message.own .text')).toHaveText(['from the first']);
  await expect(second.locator('.message.own .text')).toHaveText(['from the second']);
  expectNoProblems(first);
  expectNoProblems(second);
});

test('two members see each other’s messages and comings and goings', async ({ browser }, testInfo) => {
  const alice = await member(browser, 'Alice');
  const bob = await member(browser, 'Bob');
  // Its own room on each run (--repeat-each, retries): the shared server keeps history.
  const room = `duet-${testInfo.repeatEachIndex}-${testInfo.retry}`;
  await openRoom(alice, room);
  await openRoom(bob, room);

  await expect(alice.locator('.system-join')).toContainText(['Bob joined']);
  await expect(alice.locator('.members li')).toHaveText(['Alice (you)', 'Bob']);
  await expect(bob.locator('.members li')).toHaveText(['Alice', 'Bob (you)']);
  // The room list counts the current room live.
  await expect(alice.locator('.room-list .here')).toContainText('2 members');

  // Each waits for its ack, so the three are ordered as said.
  await sayDelivered(alice, 'Hello Bob');
  await sayDelivered(bob, 'Hi Alice');
  await sayDelivered(alice, 'How are you?');
  for (const page of [alice, bob]) {
    await expect(messages(page)).toHaveText(['Hello Bob', 'Hi Alice', 'How are you?']);
  }
  // Own messages are told apart.
  await expect(alice.locator('.message.own .text')).toHaveText(['Hello Bob', 'How are you?']);
  await expect(bob.locator('.message.own .text')).toHaveText(['Hi Alice']);
  await expect(alice.locator('.message .author').first()).toHaveText('Alice');
  await expect(alice.locator('.message time').first()).toHaveText(/^\d{1,2}:\d\d(\s[AP]M)?$/);

  await alice.screenshot({ path: testInfo.outputPath('room-desktop.png') });
  await bob.setViewportSize({ width: 390, height: 844 });
  await bob.screenshot({ path: testInfo.outputPath('room-phone.png') });

  // Bob leaves through the page's own link: Alice sees it, the socket is gone.
  await bob.getByRole('link', { name: '← Leave' }).click();
  await expect(bob).toHaveURL(/\/$/);
  await expect(alice.locator('.system-leave')).toContainText(['Bob left']);
  await expect(alice.locator('.members li')).toHaveText(['Alice (you)']);
  await expect(alice.locator('.room-list .here')).toContainText('1 member');
  await expectState(alice, 'live');
  expectNoProblems(alice);
  expectNoProblems(bob);
});

test('the chat page is server-rendered, then hydration makes it live', async ({ browser }) => {
  const noScript = await browser.newContext({ javaScriptEnabled: false });
  const shell = await noScript.newPage();
  await shell.goto('/room/rendered');
  await expect(shell.getByRole('heading', { name: '#rendered' })).toBeVisible();
  await expect(shell.getByRole('list', { name: 'Messages', exact: true })).toBeVisible();
  // Visible, but disabled until hydration: no message text can go out as a plain
  // form submission (in a URL), and nothing typed is wiped by hydration.
  await expect(shell.getByLabel('Message', { exact: true })).toBeDisabled();
  await expect(shell.getByRole('button', { name: 'Send' })).toBeDisabled();
  await expect(shell.getByLabel('Room name')).toBeDisabled();
  await expect(shell.getByRole('button', { name: 'Join' })).toBeDisabled();
  await expect(badge(shell)).toHaveText('Connecting…');
  await expect(shell).toHaveTitle('#rendered · Chorus');
  await noScript.close();

  const page = await member(browser, 'Hydrated');
  await openRoom(page, 'rendered');
  await say(page, 'now live');
  await expect(messages(page)).toHaveText(['now live']);
  expectNoProblems(page);
});

test('messages typed before the connection is ready wait in the outbox and go out in order, once', async ({ browser }) => {
  const page = await member(browser, 'Impatient');
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.routeWebSocket(/\/ws\/chat\//, async (ws) => {
    await held;
    ws.connectToServer();
  });
  await page.goto('/room/refusals');
  await page.locator('body[data-hydrated]').waitFor();
  const input = page.getByLabel('Message', { exact: true });
  const problem = page.locator('#composer-problem');
  const outbox = page.locator('.outbox-entry');
  await expect(page.locator('#composer-hint')).toHaveText(/go out as soon as it is live/);

  // What the server would never accept is refused at once and stays in the box.
  await input.fill('   ');
  await input.press('Enter');
  await expect(problem).toHaveText('message is empty');
  await expect(input).toHaveValue('   ');

  await input.fill('kept for later');
  await input.press('Enter');
  await expect(input).toHaveValue('');
  await input.fill('and this one');
  await input.press('Enter');
  await expect(outbox.locator('.text')).toHaveText(['kept for later', 'and this one']);
  await expect(outbox.locator('.status')).toHaveText(['Waiting for the connection…', 'Waiting for the connection…']);

  release();
  await expectState(page, 'live');
  await expect(page.locator('#composer-hint')).toBeEmpty();
  await expect(messages(page)).toHaveText(['kept for later', 'and this one']);
  await expect(outbox).toHaveCount(0);
  await expect(problem).toHaveText('');
  expectNoProblems(page);
});

test('a message the server refuses stays as failed with its text, and Retry delivers it once', async ({ browser }) => {
  await withServer(new ChorusServer(3208, ['--rate-limit', '1', '--rate-limit-burst', '1']), async (server) => {
    const page = await member(browser, 'Hasty', server.url);
    await openRoom(page, 'throttled');
    await say(page, 'first');
    await say(page, 'second, too soon');
    const failed = page.locator('.outbox-entry.failed');
    await expect(failed.locator('.text')).toHaveText('second, too soon');
    await expect(failed.locator('.status')).toContainText('too fast');
    await expect(messages(page)).toHaveText(['first']);

    // Retry until the rate limit lets it through; the same ref is never published twice.
    await expect(async () => {
      if (await failed.count()) await failed.getByRole('button', { name: 'Retry' }).click();
      await expect(messages(page)).toHaveText(['first', 'second, too soon'], { timeout: 500 });
    }).toPass({ timeout: 10_000 });
    await expect(page.locator('.outbox-entry')).toHaveCount(0);

    await say(page, 'third, also too soon');
    await expect(failed.locator('.text')).toHaveText('third, also too soon');
    await failed.getByRole('button', { name: 'Discard' }).click();
    await expect(page.locator('.outbox-entry')).toHaveCount(0);
    await expect(messages(page)).toHaveText(['first', 'second, too soon']);
    expectNoProblems(page);
  });
});

test('the list follows new messages until the reader scrolls up', async ({ browser }, testInfo) => {
  const reader = await member(browser, 'Reader');
  const writer = await member(browser, 'Writer');
  await reader.setViewportSize({ width: 800, height: 500 });
  // Its own room on each run: the shared server keeps history.
  const room = `scrolling-${testInfo.repeatEachIndex}-${testInfo.retry}`;
  await openRoom(reader, room);
  await openRoom(writer, room);
  const list = reader.getByRole('list', { name: 'Messages', exact: true });
  const gapBelow = () => list.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);

  for (let n = 1; n <= 30; n++) await say(writer, `line ${n}`);
  await expect(messages(reader).last()).toHaveText('line 30');
  await expect.poll(gapBelow).toBeLessThan(5);

  await list.evaluate((el) => el.scrollTo({ top: 0 }));
  await say(writer, 'line 31');
  await expect(messages(reader).last()).toHaveText('line 31');
  await reader.waitForTimeout(300);
  expect(await list.evaluate((el) => el.scrollTop)).toBe(0);

  // Back at the bottom, it follows again.
  await list.evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
  await say(writer, 'line 32');
  await expect(messages(reader).last()).toHaveText('line 32');
  await expect.poll(gapBelow).toBeLessThan(5);
  expectNoProblems(reader);
});

test('scrolled up, the reader is offered a jump to the latest with how many are new; its own message brings it down', async ({ browser }, testInfo) => {
  const reader = await member(browser, 'Reader');
  const writer = await member(browser, 'Writer');
  await reader.setViewportSize({ width: 800, height: 500 });
  const room = `jumping-${testInfo.repeatEachIndex}-${testInfo.retry}`;
  await openRoom(reader, room);
  await openRoom(writer, room);
  const list = reader.getByRole('list', { name: 'Messages', exact: true });
  const gapBelow = () => list.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
  const jump = reader.locator('button.jump');
  for (let n = 1; n <= 30; n++) await say(writer, `line ${n}`);
  await expect(messages(reader).last()).toHaveText('line 30');
  await expect(jump).toBeHidden();

  await list.evaluate((el) => el.scrollTo({ top: 0 }));
  await expect(jump).toHaveText('Jump to latest');
  for (let n = 31; n <= 33; n++) await say(writer, `line ${n}`);
  await expect(messages(reader).last()).toHaveText('line 33');
  await expect(jump).toHaveText('Jump to latest (3 new)');
  expect(await list.evaluate((el) => el.scrollTop)).toBe(0);
  // A busy room as people see it: desktop, dark scheme, phone.
  await reader.screenshot({ path: testInfo.outputPath('busy-room-desktop.png') });
  await reader.emulateMedia({ colorScheme: 'dark' });
  await reader.screenshot({ path: testInfo.outputPath('busy-room-dark.png') });
  await reader.emulateMedia({ colorScheme: 'light' });
  await jump.click();
  await expect.poll(gapBelow).toBeLessThan(5);
  await expect(jump).toBeHidden();

  // Scrolled up again, the reader's own message takes it to the end.
  await list.evaluate((el) => el.scrollTo({ top: 0 }));
  await expect(jump).toBeVisible();
  await say(reader, 'my own');
  await expect(messages(reader).last()).toHaveText('my own');
  await expect.poll(gapBelow).toBeLessThan(5);
  await expect(jump).toBeHidden();
  await reader.setViewportSize({ width: 390, height: 844 });
  await reader.screenshot({ path: testInfo.outputPath('busy-room-phone.png') });
  expectNoProblems(reader);
});

test('each room keeps its own draft, and a room switch carries no error along', async ({ browser }) => {
  const page = await member(browser, 'Drafter');
  await openRoom(page, 'first-room');
  const input = page.getByLabel('Message', { exact: true });
  await say(page, 'sent in the first room');
  // A draft the server would refuse: the error shows and the text stays.
  const tooLong = 'x'.repeat(4001);
  await input.fill(tooLong);
  await input.press('Enter');
  await expect(page.locator('.composer-problem')).toContainText('4000');
  await expect(input).toHaveValue(tooLong);

  // ...switch rooms through the page (no reload): an empty box, no error.
  await page.getByLabel('Room name').fill('second-room');
  await page.getByRole('button', { name: 'Join' }).click();
  await expect(page.getByRole('heading', { name: '#second-room' })).toBeVisible();
  await expectState(page, 'live');
  await expect(input).toHaveValue('');
  await expect(page.locator('.composer-problem')).toBeEmpty();
  await input.fill('for the second room');

  // Back: the first room's draft is there again, and the second's is kept too.
  await page.getByLabel('Room name').fill('first-room');
  await page.getByRole('button', { name: 'Join' }).click();
  await expect(page.getByRole('heading', { name: '#first-room' })).toBeVisible();
  await expect(input).toHaveValue(tooLong);
  await page.getByLabel('Room name').fill('second-room');
  await page.getByRole('button', { name: 'Join' }).click();
  await expect(page.getByRole('heading', { name: '#second-room' })).toBeVisible();
  await expect(input).toHaveValue('for the second room');
  expectNoProblems(page);
});

test('a message queued for one room is never sent to another, and goes out when the reader returns', async ({ browser }) => {
  const page = await member(browser, 'Switcher');
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.routeWebSocket(/\/ws\/chat\//, async (ws) => {
    if (ws.url().includes('/ws/chat/held-room')) await held;
    ws.connectToServer();
  });
  await page.goto('/room/held-room');
  await page.locator('body[data-hydrated]').waitFor();
  const input = page.getByLabel('Message', { exact: true });
  await input.fill('for the held room only');
  await input.press('Enter');
  await expect(page.locator('.outbox-entry .text')).toHaveText(['for the held room only']);

  await page.getByLabel('Room name').fill('open-room');
  await page.getByRole('button', { name: 'Join' }).click();
  await expect(page.getByRole('heading', { name: '#open-room' })).toBeVisible();
  await expectState(page, 'live');
  await expect(page.locator('.outbox-entry')).toHaveCount(0);
  await expect(messages(page)).toHaveCount(0);

  release();
  await page.getByLabel('Room name').fill('held-room');
  await page.getByRole('button', { name: 'Join' }).click();
  await expect(page.getByRole('heading', { name: '#held-room' })).toBeVisible();
  await expectState(page, 'live');
  await expect(messages(page)).toHaveText(['for the held room only']);
  await expect(page.locator('.outbox-entry')).toHaveCount(0);
  expectNoProblems(page);
});

test('unsent messages survive a reload of the page and are delivered once', async ({ browser }) => {
  const page = await member(browser, 'Reloader');
  const watcher = await member(browser, 'Watcher');
  await openRoom(watcher, 'reloads');
  // 'drop-acks': connected, but acks never reach the page (delivered, not confirmed);
  // 'hold': sockets opened now get no answer; 'pass': untouched.
  let mode: 'drop-acks' | 'hold' | 'pass' = 'drop-acks';
  const routed: WebSocketRoute[] = [];
  await page.routeWebSocket(/\/ws\/chat\//, (ws) => {
    routed.push(ws);
    if (mode === 'hold') return;
    const dropAcks = mode === 'drop-acks';
    const server = ws.connectToServer();
    server.onMessage((frame) => {
      if (dropAcks && typeof frame === 'string' && JSON.parse(frame).type === 'ack') return;
      ws.send(frame);
    });
  });
  await openRoom(page, 'reloads');
  const outbox = page.locator('.outbox-entry');

  await say(page, 'delivered, never confirmed');
  await expect(messages(watcher)).toHaveText(['delivered, never confirmed']);
  await expect(outbox.locator('.status')).toHaveText(['Sending…']);
  mode = 'hold';
  await routed[0].close({ code: 1012, reason: 'test drops the socket' });
  await expect(badge(page)).not.toHaveAttribute('data-state', 'live');
  await say(page, 'typed while away');
  await expect(outbox.locator('.text')).toHaveText(['delivered, never confirmed', 'typed while away']);
  await expect(outbox.locator('.status')).toHaveText(['Waiting for the connection…', 'Waiting for the connection…']);

  mode = 'pass';
  await page.reload();
  await page.locator('body[data-hydrated]').waitFor();
  await expectState(page, 'live');
  // The first goes again with its ref (the server answers with the original id), the
  // second for the first time: each is in the room once.
  await expect(outbox).toHaveCount(0);
  await expect(messages(page)).toHaveText(['delivered, never confirmed', 'typed while away']);
  await expect(messages(watcher)).toHaveText(['delivered, never confirmed', 'typed while away']);
  // Nothing is left to send again on a later reload.
  await page.reload();
  await expectState(page, 'live');
  await expect(outbox).toHaveCount(0);
  await expect(messages(watcher)).toHaveText(['delivered, never confirmed', 'typed while away']);
  expectNoProblems(page);
  expectNoProblems(watcher);
});

test('scrolling to the top of a room with more than 50 messages loads the older ones in order', async ({ browser, request }) => {
  const room = `long-history-${Date.now()}`;
  const total = 90;
  for (let n = 0; n < total; n++) {
    const published = await request.post(`/api/rooms/${room}/messages`, {
      headers: { Authorization: `Bearer ${API_KEY}` },
      data: { content: `m${n}`, user: 'Archive' },
    });
    expect(published.status()).toBe(201);
  }
  const page = await member(browser, 'Scroller');
  await openRoom(page, room);
  const expected = (from: number) => Array.from({ length: total - from }, (_, n) => `m${from + n}`);
  // The join history: the newest 50, scrolled to the bottom.
  await expect(messages(page)).toHaveText(expected(total - 50));
  await expect(messages(page).last()).toBeInViewport();
  const firstShown = page.locator('.message', { hasText: /^Archive.*m40$/s });
  // To the top: the older 40 arrive above, in order, and the page stays on what
  // was at the top.
  await page.locator('.messages').evaluate((list) => {
    list.scrollTop = 0;
  });
  await expect(messages(page)).toHaveText(expected(0));
  await expect(page.locator('.messages .message[data-id]').first()).toContainText('m0');
  await expect(firstShown).toBeInViewport();
  // The server has nothing older: no more loading offered.
  await expect(page.getByRole('button', { name: 'Load older messages' })).toHaveCount(0);
  expectNoProblems(page);
});

test('removed by the backend: the page says why over the composer, reconnects only when asked, and a ban keeps the user out', async ({ browser, request }) => {
  const page = await member(browser, 'Spammer');
  const { sockets } = await watchSockets(page);
  await openRoom(page, `moderated-${Date.now()}`);
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem('chorus.session')!));
  const userId = tokenClaims(session.token).sub as string;
  const disconnect = (data: Record<string, unknown>) =>
    request.post(`/api/users/${userId}/disconnect`, { headers: { Authorization: `Bearer ${API_KEY}` }, data });
  const banner = page.locator('.connection-banner');
  const retry = banner.getByRole('button', { name: 'Retry now' });

  // Removed without a ban: said in the badge and over the composer, never retried
  // by itself (not even when the tab comes back), and Retry now gets back in.
  expect((await disconnect({ reason: 'cool down' })).status()).toBe(204);
  await expect(badge(page)).toHaveText('Offline: you were removed from the chat: cool down');
  await expect(banner).toHaveText(/Disconnected: you were removed from the chat: cool down\./);
  await expect(page.locator('#composer-hint')).toHaveText(/messages you send now wait here/);
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await say(page, 'after the break');
  await expect(page.locator('.outbox-entry .status')).toHaveText(['Waiting for the connection…']);
  expect(sockets.map((socket) => socket.closedByServer)).toEqual([4010]);
  await retry.click();
  await expectState(page, 'live');
  await expect(banner).toBeHidden();
  await expect(page.locator('.outbox-entry')).toHaveCount(0);
  await expect(messages(page)).toHaveText(['after the break']);
  expect(sockets).toHaveLength(2);

  // Removed with a ban: still refused after a reload (4003), and on Retry now.
  expect((await disconnect({ reason: 'spamming', ban_seconds: 600 })).status()).toBe(204);
  await expect(badge(page)).toHaveText('Offline: you were removed from the chat: spamming');
  expect(sockets.map((socket) => socket.closedByServer)).toEqual([4010, 4010]);
  await page.reload();
  await expect(badge(page)).toHaveText('Offline: you may not join this room');
  await expect(banner).toHaveText(/Disconnected: you may not join this room\./);
  expect(sockets.map((socket) => socket.closedByServer)).toEqual([4010, 4010, 4003]);
  await retry.click();
  await expect.poll(() => sockets.map((socket) => socket.closedByServer)).toEqual([4010, 4010, 4003, 4003]);
  await expect(badge(page)).toHaveText('Offline: you may not join this room');
});

test('Shift+Enter writes a new line, Enter sends, and a counter warns near the length limit', async ({ browser }) => {
  const writer = await member(browser, 'Poet');
  const reader = await member(browser, 'Reader');
  await openRoom(writer, 'multiline');
  await openRoom(reader, 'multiline');
  const input = writer.getByLabel('Message', { exact: true });
  await input.pressSequentially('roses are red');
  await input.press('Shift+Enter');
  await input.pressSequentially('violets are blue');
  await expect(input).toHaveValue('roses are red\nviolets are blue');
  await input.press('Enter');
  await expect(input).toHaveValue('');
  // Both lines arrive as one message, shown on two lines.
  await expect(messages(reader)).toHaveText(['roses are red\nviolets are blue']);
  const shown = messages(reader).first();
  expect((await shown.boundingBox())!.height).toBeGreaterThan(
    await shown.evaluate((el) => 1.5 * parseFloat(getComputedStyle(el).lineHeight)),
  );

  // Quiet until nine tenths of the 4000 characters are used.
  const counter = writer.locator('#composer-count');
  await input.fill('a'.repeat(3599));
  await expect(counter).toBeHidden();
  await input.fill('a'.repeat(3600));
  await expect(counter).toHaveText('400 characters left');
  await expect(input).toHaveAttribute('aria-describedby', /composer-count/);
  await input.fill('a'.repeat(4001));
  await expect(counter).toHaveText('1 over the limit of 4000');
  await input.press('Enter');
  // Refused here, text kept, nothing sent.
  await expect(writer.locator('#composer-problem')).toContainText('the limit is 4000');
  await expect(input).toHaveValue('a'.repeat(4001));
  await input.press('Backspace');
  await expect(counter).toHaveText('0 characters left');
  await input.press('Enter');
  await expect(messages(reader)).toHaveCount(2);
  await expect(counter).toBeHidden();
  expectNoProblems(writer);
  expectNoProblems(reader);
});

test('web addresses in a message are links; everything else stays text', async ({ browser }) => {
  const writer = await member(browser, 'Linker');
  const reader = await member(browser, 'Clicker');
  await openRoom(writer, 'links');
  await openRoom(reader, 'links');
  await say(writer, 'docs at https://example.com/guide?page=2. <b>not bold</b> javascript:alert(1)');
  const text = messages(reader).first();
  await expect(text).toHaveText('docs at https://example.com/guide?page=2. <b>not bold</b> javascript:alert(1)');
  const links = text.getByRole('link');
  await expect(links).toHaveCount(1);
  await expect(links).toHaveText('https://example.com/guide?page=2');
  await expect(links).toHaveAttribute('href', 'https://example.com/guide?page=2');
  await expect(links).toHaveAttribute('rel', 'noopener noreferrer');
  await expect(links).toHaveAttribute('target', '_blank');
  await expect(text.locator('b')).toHaveCount(0);
  expectNoProblems(reader);
});

/** As when the reader switches to another tab (`hidden`) and back. */
async function setHidden(page: import('@playwright/test').Page, hidden: boolean): Promise<void> {
  await page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('while the tab is hidden the title counts new messages; back, a divider marks the first unseen', async ({ browser }) => {
  const reader = await member(browser, 'Away');
  const writer = await member(browser, 'Busy');
  await openRoom(reader, 'unread');
  await openRoom(writer, 'unread');
  await sayDelivered(writer, 'seen before leaving');
  await expect(messages(reader)).toHaveText(['seen before leaving']);
  await expect(reader).toHaveTitle('#unread · Chorus');

  await setHidden(reader, true);
  await sayDelivered(writer, 'first while away');
  await expect(reader).toHaveTitle('(1) #unread · Chorus');
  await sayDelivered(writer, 'second while away');
  await expect(reader).toHaveTitle('(2) #unread · Chorus');
  await setHidden(reader, false);
  await expect(reader).toHaveTitle('#unread · Chorus');
  const divided = reader.locator('.message.first-unseen');
  await expect(divided).toHaveCount(1);
  await expect(divided.locator('.text')).toHaveText('first while away');
  expect(await divided.evaluate((el) => getComputedStyle(el, '::before').content)).toBe('"New messages"');
  // Read on: the divider stays; a new absence with news moves it.
  await sayDelivered(writer, 'read at once');
  await expect(reader).toHaveTitle('#unread · Chorus');
  await setHidden(reader, true);
  await sayDelivered(writer, 'later while away');
  await expect(reader).toHaveTitle('(1) #unread · Chorus');
  await setHidden(reader, false);
  await expect(divided.locator('.text')).toHaveText('later while away');
  expectNoProblems(reader);
});

test('long unbroken names and words wrap instead of overflowing, on a phone', async ({ browser }, testInfo) => {
  const room = 'r'.repeat(64);
  const longName = 'N'.repeat(32);
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  collectProblems(page);
  await page.goto('/');
  await page.locator('body[data-hydrated]').waitFor();
  await page.getByLabel('Display name').fill(longName);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.locator('.me')).toHaveText(longName);
  // What sticks out to the right of the screen, if anything.
  const fits = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .map((el) => `${el.tagName.toLowerCase()}.${el.className}`),
    );
  expect(await fits()).toEqual([]);
  await openRoom(page, room);
  await sayDelivered(page, 'W'.repeat(300));
  await expect(messages(page)).toHaveText(['W'.repeat(300)]);
  await expect(page.getByRole('heading', { name: `#${room}` })).toBeVisible();
  expect(await fits()).toEqual([]);
  // Nothing sticks out of its own box either.
  const overflowing = await page.evaluate(() =>
    [...document.querySelectorAll('.room-header h1, .message, .message .author, .message .text, .members li')]
      .filter((el) => el.scrollWidth > el.clientWidth + 1)
      .map((el) => el.className || el.tagName),
  );
  expect(overflowing).toEqual([]);
  await page.screenshot({ path: testInfo.outputPath('room-long-names-phone.png') });
  expectNoProblems(page);
  await context.close();
});

test('others see who is typing, until the message arrives or five quiet seconds pass', async ({ browser }, testInfo) => {
  const alice = await member(browser, 'Alice');
  const bob = await member(browser, 'Bob');
  const carol = await member(browser, 'Carol');
  // Bob's timers and clock are the test's: five seconds pass when it says so.
  await bob.clock.install();
  const room = `typing-${testInfo.repeatEachIndex}-${testInfo.retry}`;
  for (const page of [alice, bob, carol]) {
    await openRoom(page, room);
  }
  await expect(bob.locator('.members li')).toHaveText(['Alice', 'Bob (you)', 'Carol']);
  const typing = bob.locator('.typing');
  await expect(typing).toHaveText('');

  await alice.locator('#composer-input').pressSequentially('Hel');
  await expect(typing).toHaveText('Alice is typing…');
  await carol.locator('#composer-input').pressSequentially('Hey');
  await expect(typing).toHaveText('Alice and Carol are typing…');
  // Nobody is told about themselves.
  await expect(alice.locator('.typing')).toHaveText('Carol is typing…');

  await carol.locator('#composer-input').press('Enter');
  await expect(messages(bob)).toHaveText(['Hey']);
  await expect(typing).toHaveText('Alice is typing…');

  await bob.clock.fastForward(5000);
  await expect(typing).toHaveText('');
  for (const page of [alice, bob, carol]) {
    expectNoProblems(page);
  }
});

test('messages sit under day headings, one author\'s run is grouped, and times follow the locale', async ({ browser }, testInfo) => {
  const room = `days-${testInfo.repeatEachIndex}-${testInfo.retry}`;
  // A time zone where it is about noon now, so the messages never straddle midnight.
  const offset = 12 - new Date().getUTCHours();
  const timezoneId = offset === 0 ? 'Etc/GMT' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
  const alice = await member(browser, 'Alice', undefined, { locale: 'en-US', timezoneId });
  const bob = await member(browser, 'Bob', undefined, { locale: 'de-DE', timezoneId });
  await openRoom(alice, room);
  await openRoom(bob, room);
  await sayDelivered(alice, 'one');
  await sayDelivered(alice, 'two');
  await sayDelivered(alice, 'three');
  await sayDelivered(bob, 'four');
  await sayDelivered(alice, 'five');
  await expect(messages(alice)).toHaveText(['one', 'two', 'three', 'four', 'five']);

  // One heading for the day; Alice's first three messages are one group.
  await expect(alice.locator('.messages .day')).toHaveText(['Today']);
  const rows = alice.locator('.messages .message');
  await expect(rows.locator('.text')).toHaveText(['one', 'two', 'three', 'four', 'five']);
  expect(await rows.evaluateAll((items) => items.map((item) => item.classList.contains('continued')))).toEqual([
    false,
    true,
    true,
    false,
    false,
  ]);
  // A continuing message shows no author of its own, but screen readers still get it.
  const two = rows.nth(1);
  await expect(two.locator('.author')).toHaveText('Alice');
  expect(await two.locator('.author').boundingBox()).toMatchObject({ width: 1, height: 1 });
  await expect(rows.nth(0).locator('.author')).toBeVisible();

  // 12 hours in American English, 24 in German.
  await expect(rows.first().locator('time')).toHaveText(/^\d{1,2}:\d{2}\s[AP]M$/);
  await expect(bob.locator('.messages .message time').first()).toHaveText(/^\d{2}:\d{2}$/);
  await expect(bob.locator('.messages .day')).toHaveText(['Today']);

  // The full date and time on hover, and on keyboard focus.
  const time = rows.first().locator('time');
  const full = await time.getAttribute('data-full');
  const expected = await time.evaluate((el) =>
    new Date(el.getAttribute('datetime')!).toLocaleString('en-US', { dateStyle: 'full', timeStyle: 'short' }),
  );
  expect(full).toBe(expected);
  const tip = () => time.evaluate((el) => getComputedStyle(el, '::after').content);
  expect(await tip()).toBe('none');
  await time.hover();
  expect(await tip()).toBe(JSON.stringify(expected));
  await alice.mouse.move(0, 0);
  await time.focus();
  expect(await tip()).toBe(JSON.stringify(expected));
  await alice.screenshot({ path: testInfo.outputPath('room-days-and-groups.png') });

  // Seen again a day later, the same messages are yesterday's; three days later,
  // under their date.
  const sentAt = new Date((await time.getAttribute('datetime'))!);
  await alice.clock.setFixedTime(new Date(sentAt.getTime() + 24 * 3600 * 1000));
  await openRoom(alice, room);
  await expect(messages(alice)).toHaveText(['one', 'two', 'three', 'four', 'five']);
  await expect(alice.locator('.messages .day')).toHaveText(['Yesterday']);
  await alice.clock.setFixedTime(new Date(sentAt.getTime() + 3 * 24 * 3600 * 1000));
  await openRoom(alice, room);
  await expect(messages(alice)).toHaveText(['one', 'two', 'three', 'four', 'five']);
  const date = sentAt.toLocaleDateString('en-US', { dateStyle: 'full', timeZone: timezoneId });
  await expect(alice.locator('.messages .day')).toHaveText([date]);
  for (const page of [alice, bob]) {
    expectNoProblems(page);
  }
});

test('on a phone the room list opens as a drawer, and going to a room closes it', async ({ browser }, testInfo) => {
  const suffix = `${testInfo.repeatEachIndex}-${testInfo.retry}`;
  const host = await member(browser, 'Host');
  await openRoom(host, `drawer-b-${suffix}`);
  const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
  const page = await member(browser, 'Walker', undefined, phone);
  await openRoom(page, `drawer-a-${suffix}`);
  const toggle = page.getByRole('button', { name: 'Rooms' });
  const drawer = page.locator('#rooms-drawer');
  await expect(drawer).toBeHidden();

  // Escape closes it, as a tap outside does.
  await toggle.tap();
  await expect(drawer).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(drawer).toBeHidden();
  await toggle.tap();
  await drawer.getByRole('button', { name: 'Close' }).tap();
  await expect(drawer).toBeHidden();

  await toggle.tap();
  const link = drawer.getByRole('link', { name: new RegExp(`drawer-b-${suffix}`) });
  await expect(link).toContainText('1 member');
  await page.screenshot({ path: testInfo.outputPath('room-switcher-phone.png') });
  await link.tap();
  await expect(page).toHaveURL(new RegExp(`/room/drawer-b-${suffix}$`));
  await expectState(page, 'live');
  await expect(drawer).toBeHidden();
  await expect(page.getByLabel('Message', { exact: true })).toBeFocused();
  await expect(page.locator('.members li')).toHaveText(['Host', 'Walker (you)']);

  // On a wider screen the list is in the sidebar, and needs no button.
  await page.setViewportSize({ width: 1280, height: 800 });
  await expect(toggle).toBeHidden();
  await expect(drawer.getByRole('heading', { name: 'Rooms', exact: true })).toBeVisible();
  for (const each of [host, page]) {
    expectNoProblems(each);
  }
});

/**
 * A stand-in for the browser's notifications, installed before the page loads:
 * records each notification and permission request, and answers requests as told
 * (`granted` unless the page's `__answer` says otherwise).
 */
async function recordNotifications(page: import('@playwright/test').Page): Promise<void> {
  await page.addInitScript(() => {
    const record = { shown: [] as { title: string; body?: string; tag?: string }[], requests: 0 };
    (window as unknown as { notes: typeof record }).notes = record;
    class RecordedNotification extends EventTarget {
      static permission = localStorage.getItem('test.permission') ?? 'default';
      static async requestPermission() {
        record.requests += 1;
        if (RecordedNotification.permission === 'default') {
          RecordedNotification.permission = (window as unknown as { __answer?: string }).__answer ?? 'granted';
          localStorage.setItem('test.permission', RecordedNotification.permission);
        }
        return RecordedNotification.permission;
      }
      constructor(title: string, options?: { body?: string; tag?: string }) {
        super();
        record.shown.push({ title, body: options?.body, tag: options?.tag });
      }
      close() {}
    }
    (window as unknown as { Notification: unknown }).Notification = RecordedNotification;
  });
}

function notes(page: import('@playwright/test').Page) {
  return page.evaluate(() => (window as unknown as { notes: { shown: unknown[]; requests: number } }).notes);
}

test('mentions notify while the tab is hidden, once asked for by the button, never on load', async ({ browser }, testInfo) => {
  const room = `mentions-${testInfo.repeatEachIndex}-${testInfo.retry}`;
  const alice = await member(browser, 'Alice');
  const bob = await member(browser, 'Bob');
  await recordNotifications(alice);
  await openRoom(alice, room);
  await openRoom(bob, room);
  const button = alice.getByRole('button', { name: 'Notify me of mentions' });
  await expect(button).toHaveAttribute('aria-pressed', 'false');
  expect((await notes(alice)).requests).toBe(0);

  // Off: a mention while hidden shows nothing.
  await setHidden(alice, true);
  await sayDelivered(bob, 'alice, before you asked');
  await expect(messages(alice).last()).toHaveText('alice, before you asked');
  await setHidden(alice, false);

  await button.click();
  await expect(button).toHaveAttribute('aria-pressed', 'true');
  expect((await notes(alice)).requests).toBe(1);

  // Visible: nothing. Hidden: a mention, not a plain message nor another name.
  await sayDelivered(bob, 'hey @Alice, while you look');
  await setHidden(alice, true);
  await sayDelivered(bob, 'just talking');
  await sayDelivered(bob, 'malice is not a name');
  await sayDelivered(bob, 'ALICE: look at this');
  await expect(messages(alice).last()).toHaveText('ALICE: look at this');
  await expect.poll(async () => (await notes(alice)).shown).toEqual([
    { title: `You were mentioned in #${room}`, body: 'Bob: ALICE: look at this', tag: room },
  ]);
  // One's own message mentioning oneself: nothing.
  await sayDelivered(alice, 'note to alice');
  expect((await notes(alice)).shown).toHaveLength(1);
  await setHidden(alice, false);

  // The choice holds across a reload, without asking again; pressed again, off.
  await openRoom(alice, room);
  await expect(button).toHaveAttribute('aria-pressed', 'true');
  expect((await notes(alice)).requests).toBe(0);
  await button.click();
  await expect(button).toHaveAttribute('aria-pressed', 'false');
  await setHidden(alice, true);
  await sayDelivered(bob, 'alice, now off');
  await expect(messages(alice).last()).toHaveText('alice, now off');
  expect((await notes(alice)).shown).toEqual([]);
  for (const page of [alice, bob]) {
    expectNoProblems(page);
  }
});

test('blocked notifications say where to allow them; without notifications there is no button', async ({ browser }) => {
  const blocked = await member(browser, 'Blocked');
  await recordNotifications(blocked);
  await blocked.addInitScript(() => {
    (window as unknown as { __answer: string }).__answer = 'denied';
  });
  await openRoom(blocked, 'no-notes');
  const button = blocked.getByRole('button', { name: 'Notify me of mentions' });
  const note = blocked.getByText("allow notifications in the browser's site settings");
  await expect(note).toBeHidden();
  await button.click();
  await expect(note).toBeVisible();
  await expect(button).toHaveAttribute('aria-pressed', 'false');

  const without = await member(browser, 'Without');
  await without.addInitScript(() => {
    delete (window as unknown as { Notification?: unknown }).Notification;
  });
  await openRoom(without, 'no-notes');
  await expect(without.locator('.mention-alerts')).toBeHidden();
  for (const page of [blocked, without]) {
    expectNoProblems(page);
  }
});

test("the browser's own notifications, once granted, show a mention", async ({ browser }) => {
  const reader = await member(browser, 'Reader');
  await reader.context().grantPermissions(['notifications']);
  // Chromium's real notifications, each also counted.
  await reader.addInitScript(() => {
    const shown: string[] = [];
    (window as unknown as { shown: string[] }).shown = shown;
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title: string, options?: NotificationOptions) {
        super(title, options);
        shown.push(`${title} | ${options?.body}`);
      }
    } as typeof Notification;
  });
  const writer = await member(browser, 'Writer');
  await openRoom(reader, 'real-notes');
  await openRoom(writer, 'real-notes');
  await reader.getByRole('button', { name: 'Notify me of mentions' }).click();
  await expect(reader.getByRole('button', { name: 'Notify me of mentions' })).toHaveAttribute('aria-pressed', 'true');
  await setHidden(reader, true);
  await sayDelivered(writer, 'over to you, Reader');
  await expect(messages(reader).last()).toHaveText('over to you, Reader');
  await expect.poll(() => reader.evaluate(() => (window as unknown as { shown: string[] }).shown)).toEqual([
    'You were mentioned in #real-notes | Writer: over to you, Reader',
  ]);
  for (const page of [reader, writer]) {
    expectNoProblems(page);
  }
});
