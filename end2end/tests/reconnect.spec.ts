import { test, expect } from '@playwright/test';
import {
  ChorusServer,
  badge,
  collectProblems,
  expectNoProblems,
  expectState,
  holdReconnects,
  member,
  messages,
  onRedis,
  say,
  sayDelivered,
  signIn,
  signToken,
  offeredToken,
  recordOfferedSockets,
  tokenClaims,
  watchSockets,
  withServer,
} from './support';

// These tests stop, restart and reconfigure servers of their own.
test.describe.configure({ mode: 'serial' });

test('a restarted server: the badge shows reconnecting, then live, and chat goes on', async ({ browser }, testInfo) => {
  await withServer(new ChorusServer(3201), async (server) => {
    const context = await browser.newContext({ baseURL: server.url });
    const page = await context.newPage();
    collectProblems(page);
    const { sockets } = await watchSockets(page);
    await signIn(page, 'Survivor');
    await page.goto('/room/restarts');
    await expectState(page, 'live');
    // Shown before the stop: on memory the restarted server cannot bring it back.
    // (`say` alone returns once the text is queued; the ack can come first.)
    await sayDelivered(page, 'before the restart');

    await server.stop();
    await expectState(page, 'reconnecting');
    expect(sockets[0].closedByServer).toBe(1001);
    // The attempt is in the text, not only in a hover title.
    await expect(badge(page)).toHaveText(/^Reconnecting in \d+ s \(attempt \d+\)$/);
    await page.screenshot({ path: testInfo.outputPath('room-reconnecting.png') });
    // Typed while the server is down: it waits in the outbox and goes out once back.
    await expect(page.locator('#composer-hint')).toHaveText(/go out when the connection is back/);
    await say(page, 'sent while down');
    await expect(page.locator('.outbox-entry .status')).toHaveText(['Waiting for the connection…']);

    await server.start();
    await expectState(page, 'live', 20_000);
    await expect(page.locator('#composer-hint')).toBeEmpty();
    await expect(messages(page)).toHaveText(['before the restart', 'sent while down']);
    await expect(page.locator('.outbox-entry')).toHaveCount(0);
    if (onRedis) {
      // History lives in Redis: the restarted server recovers everything.
      await expect(page.locator('.badge-missed')).toBeHidden();
    } else {
      // The new server has no history of the old one: that is said, not hidden.
      await expect(page.locator('.badge-missed')).toBeVisible();
    }
    expectNoProblems(page);
    await context.close();
  });
});

test('while the connection is down a banner over the composer says so, and Retry now tries at once', async ({ browser }, testInfo) => {
  await withServer(new ChorusServer(3215), async (server) => {
    const page = await member(browser, 'Patient', server.url);
    await page.goto('/room/banner');
    await expectState(page, 'live');
    const banner = page.locator('.connection-banner');
    await expect(banner).toBeHidden();

    await server.stop();
    await expect(banner).toContainText(/^Connection lost\. Trying again in \d+ s\./);
    await expect(page.locator('#composer-hint')).toHaveText(/go out when the connection is back/);
    // Wait for a long backoff (the waits double from half a second): an attempt
    // within two seconds of the click can then only be the button's.
    await expect(badge(page)).toHaveText(/^Reconnecting in ([4-9]|\d\d) s /, { timeout: 30_000 });
    const attempt = async () => Number((await badge(page).textContent())?.match(/attempt (\d+)/)?.[1]);
    const before = await attempt();
    await page.screenshot({ path: testInfo.outputPath('room-offline-banner.png') });
    await banner.getByRole('button', { name: 'Retry now' }).click();
    await expect.poll(attempt, { timeout: 2_000 }).toBeGreaterThan(before);

    await server.start();
    // (A click that lands during an attempt is spent on it: click again until live.)
    await expect(async () => {
      await banner.getByRole('button', { name: 'Retry now' }).click({ timeout: 1_000 });
      await expectState(page, 'live', 1_000);
    }).toPass({ timeout: 10_000 });
    await expect(banner).toBeHidden();
    expectNoProblems(page);
  });
});

test('a dropped socket resumes with since and shows what was sent meanwhile, once', async ({ browser }) => {
  await withServer(new ChorusServer(3202), async (server) => {
    const away = await member(browser, 'Away', server.url);
    const talker = await member(browser, 'Talker', server.url);
    // Every socket of the reader goes through the test; the reconnect waits.
    const { sockets, release: openGate } = await holdReconnects(away);

    await away.goto('/room/recovery');
    await expectState(away, 'live');
    await talker.goto('/room/recovery');
    await expectState(talker, 'live');
    await say(talker, 'one');
    await expect(messages(away)).toHaveText(['one']);
    const lastSeen = await away.locator('.message').last().getAttribute('data-id');

    // 4008 is a close the protocol marks as reconnectable.
    await sockets[0].route.close({ code: 4008, reason: 'Too slow to keep up' });
    await expect.poll(() => sockets.length).toBe(2);
    await say(talker, 'two');
    await say(talker, 'three');
    await expect(messages(talker)).toHaveText(['one', 'two', 'three']);
    openGate();

    await expectState(away, 'live');
    expect(new URL(sockets[1].url).searchParams.get('since')).toBe(lastSeen);
    await expect(messages(away)).toHaveText(['one', 'two', 'three']);
    await expect(away.locator('.badge-missed')).toBeHidden();
    await say(away, 'back');
    await expect(messages(talker)).toHaveText(['one', 'two', 'three', 'back']);
    expectNoProblems(away);
    await away.context().close();
    await talker.context().close();
  });
});

test('a member who saw no message yet resumes from the welcome: more than a history of messages, none lost', async ({ browser }) => {
  await withServer(new ChorusServer(3207, ['--rate-limit-burst', '100', '--user-rate-limit-burst', '100']), async (server) => {
    const away = await member(browser, 'Away', server.url);
    const talker = await member(browser, 'Talker', server.url);
    const { sockets, release: openGate } = await holdReconnects(away);
    await talker.goto('/room/quiet');
    await expectState(talker, 'live');
    await away.goto('/room/quiet');
    await expectState(away, 'live');

    // Dropped before any message: the next attempt still has a since (the welcome's
    // last_id), so the 55 messages sent meanwhile (more than the 50 of a plain join)
    // all come back.
    await sockets[0].route.close({ code: 4008, reason: 'Too slow to keep up' });
    await expect.poll(() => sockets.length).toBe(2);
    const sent = Array.from({ length: 55 }, (_, n) => `while away ${n}`);
    for (const text of sent) await say(talker, text);
    await expect(messages(talker)).toHaveText(sent);
    openGate();

    await expectState(away, 'live');
    expect(new URL(sockets[1].url).searchParams.get('since')).toMatch(/^\d+$/);
    await expect(messages(away)).toHaveText(sent);
    await expect(away.locator('.badge-missed')).toBeHidden();
    expectNoProblems(away);
    await away.context().close();
    await talker.context().close();
  });
});

test('a forged token leads back to the sign-in page without a reconnect loop', async ({ page, baseURL }) => {
  collectProblems(page);
  const { sockets } = await watchSockets(page);
  await page.goto('/');
  await page.evaluate(() =>
    localStorage.setItem(
      'chorus.session',
      JSON.stringify({ name: 'Mallory', token: 'forged.token.value', expires_at: '2099-01-01T00:00:00Z', received_at_ms: 4102444800000, lifetime_secs: 3600 }),
    ),
  );
  await page.goto('/room/vault');
  await expect(page).toHaveURL(`${baseURL}/?reason=unauthorized&room=vault`);
  await expect(page.getByRole('alert').filter({ hasText: 'session is no longer valid' })).toBeVisible();
  await expect(page.getByLabel('Display name')).toBeVisible();
  expect(await page.evaluate(() => localStorage.getItem('chorus.session'))).toBeNull();
  // Refused once with 4001, then the room page (and its socket task) was gone.
  expect(sockets).toHaveLength(1);
  expect(sockets[0].closedByServer).toBe(4001);
  expectNoProblems(page);
});

test('changing rooms closes the old socket: nothing from the old room appears', async ({ browser }) => {
  await withServer(new ChorusServer(3203), async (server) => {
    const mover = await (await browser.newContext({ baseURL: server.url })).newPage();
    const stayer = await (await browser.newContext({ baseURL: server.url })).newPage();
    collectProblems(mover);
    const { sockets: moves } = await watchSockets(mover);
    await signIn(mover, 'Mover');
    await signIn(stayer, 'Stayer');
    await mover.goto('/room/old-room');
    await expectState(mover, 'live');
    await stayer.goto('/room/old-room');
    await expectState(stayer, 'live');
    await say(stayer, 'for the old room');
    await expect(messages(mover)).toHaveText(['for the old room']);

    // A client-side navigation: same page component, new room.
    const roomName = mover.getByLabel('Room name');
    await roomName.fill('new-room');
    await roomName.press('Enter');
    await expect(mover).toHaveURL(/\/room\/new-room$/);
    await expectState(mover, 'live');
    await expect(mover.getByRole('heading', { name: '#new-room' })).toBeVisible();
    await expect(messages(mover)).toHaveCount(0);
    await expect(stayer.locator('.system-leave')).toContainText(['Mover left']);
    // The page closed the old room's socket itself, normally.
    expect(moves[0].closedByPage).toBe(1000);
    await expect
      .poll(async () => (await server.rooms()).map((room) => [room.name, room.connections]))
      .toEqual([
        ['new-room', 1],
        ['old-room', 1],
      ]);

    await say(stayer, 'after the move');
    await say(mover, 'hello new room');
    await expect(messages(stayer)).toHaveText(['for the old room', 'after the move']);
    await expect(messages(mover)).toHaveText(['hello new room']);

    // Leaving unmounts the page: its socket closes and the room is gone.
    await mover.getByRole('link', { name: '← Leave' }).click();
    await expect(mover).toHaveURL(/\/$/);
    await expect.poll(async () => (await server.rooms()).map((room) => room.name)).toEqual(['old-room']);
    expectNoProblems(mover);
  });
});

test('tokens are renewed in the background and handed over on the open socket, in every tab', async ({ browser }) => {
  // Tokens valid for 4 s (plus the server's 5 s leeway): renewed about every 3 s.
  await withServer(new ChorusServer(3204, ['--guest-token-ttl', '4s']), async (server) => {
    const context = await browser.newContext({ baseURL: server.url });
    const renewing = await context.newPage();
    const following = await context.newPage();
    // The second tab cannot renew by itself: it lives on the first tab's renewals,
    // which reach it through the `storage` event.
    await following.route('**/api/token/refresh', (route) => route.abort());
    const watched = [];
    for (const page of [renewing, following]) {
      collectProblems(page);
      watched.push((await watchSockets(page)).sockets);
    }
    await signIn(renewing, 'Longstay');
    const stored = () => renewing.evaluate(() => JSON.parse(localStorage.getItem('chorus.session')!));
    const signedIn = await stored();
    for (const page of [renewing, following]) {
      await page.goto('/room/renewals');
      await expectState(page, 'live');
    }

    // Well past the first token's expiry and the server's leeway...
    const expired = (tokenClaims(signedIn.token).exp as number) * 1000 + 5_000;
    await expect.poll(() => Date.now() > expired + 1_000, { timeout: 20_000 }).toBe(true);
    // ...each tab still has the socket it opened: the renewed tokens went over it.
    for (const sockets of watched) {
      expect(sockets).toHaveLength(1);
      expect(sockets[0].closedByServer).toBeUndefined();
    }
    await expectState(renewing, 'live');
    await expectState(following, 'live');
    await say(following, 'still on the first socket');
    await expect(messages(renewing)).toHaveText(['still on the first socket']);
    // Renewed, not replaced: the same user, who never left the room.
    const renewed = await stored();
    expect(renewed.token).not.toBe(signedIn.token);
    expect(tokenClaims(renewed.token).sub).toBe(tokenClaims(signedIn.token).sub);
    await expect(renewing.locator('.system-leave')).toHaveCount(0);
    expectNoProblems(renewing);
    expectNoProblems(following);
    await context.close();
  });
});

test('pings are answered, and a token the server never got renewed closes with 4002, then the room goes on', async ({ browser }) => {
  // Pings every 500 ms with 500 ms to answer; tokens valid for 1 s (plus 5 s leeway).
  await withServer(new ChorusServer(3204, [
    '--heartbeat-interval', '500ms',
    '--heartbeat-timeout', '500ms',
    '--guest-token-ttl', '1s',
  ]), async (server) => {
    const page = await (await browser.newContext({ baseURL: server.url })).newPage();
    collectProblems(page);
    // The renewed tokens never reach the server over the first socket.
    let dropRefreshes = true;
    const { sockets } = await watchSockets(page, { dropFromPage: (frame) => frame.type === 'refresh' && dropRefreshes });
    const offered = await recordOfferedSockets(page);
    await signIn(page, 'Longstay');
    const firstToken = await page.evaluate(() => JSON.parse(localStorage.getItem('chorus.session')!).token);
    await page.goto('/room/heartbeat');
    await expectState(page, 'live');
    await say(page, 'still here');

    // The token stops being accepted about 6 s in: 4002, a fresh token, a new socket.
    await expect.poll(() => sockets.length, { timeout: 15_000 }).toBe(2);
    dropRefreshes = false;
    expect(sockets[0].closedByServer).toBe(4002);
    await expectState(page, 'live');
    const secondToken = offeredToken((await offered())[1])!;
    expect(secondToken).not.toBe(firstToken);
    // Renewed, not replaced: the same user.
    expect(tokenClaims(secondToken).sub).toBe(tokenClaims(firstToken).sub);
    await say(page, 'and still here');
    await expect(messages(page)).toHaveText(['still here', 'and still here']);
    // A missed pong would have closed the socket with 4009 long before.
    expect(sockets).toHaveLength(2);
    expect(sockets[1].closedByServer).toBeUndefined();
    expectNoProblems(page);
  });
});

test('an expired stored token at page load is renewed silently, keeping the identity', async ({ page, baseURL }) => {
  collectProblems(page);
  const { sockets } = await watchSockets(page);
  const offered = await recordOfferedSockets(page);
  const sub = 'guest-00000000000000aa';
  const expired = signToken({ sub, name: 'Sleeper', exp: Math.floor(Date.now() / 1000) - 3600, guest: true });
  await page.goto('/');
  await page.evaluate((token) =>
    localStorage.setItem(
      'chorus.session',
      // Its background renewal not due yet: the server's 4002 is what renews it.
      JSON.stringify({ name: 'Sleeper', token, expires_at: '2026-01-01T00:00:00Z', received_at_ms: 4102444800000, lifetime_secs: 3600 }),
    ),
    expired,
  );
  await page.goto('/room/sleepers');
  await expectState(page, 'live');
  await expect(page).toHaveURL(`${baseURL}/room/sleepers`);
  await expect(page.locator('.members')).toContainText('Sleeper');
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem('chorus.session')!));
  expect(session.token).not.toBe(expired);
  expect(tokenClaims(session.token).sub).toBe(sub);
  // The first socket was refused with 4002; the second used the renewed token.
  expect(sockets).toHaveLength(2);
  expect(sockets[0].closedByServer).toBe(4002);
  const opened = await offered();
  expect(opened.map(offeredToken)).toEqual([expired, session.token]);
  // Tokens travel as a subprotocol, never in the URL (where proxies log them).
  for (const socket of opened) {
    expect(new URL(socket.url).searchParams.has('token')).toBe(false);
    expect(socket.protocols[0]).toBe('chorus.v1');
  }
  await say(page, 'awake again');
  await expect(messages(page)).toHaveText(['awake again']);
  expectNoProblems(page);
});

test('a frozen server is noticed within interval + timeout; the room comes back when it thaws', async ({ browser }) => {
  // Pings every second with a second to answer: silence beyond 2 s means dead.
  await withServer(new ChorusServer(3206, ['--heartbeat-interval', '1s', '--heartbeat-timeout', '1s']), async (server) => {
    const page = await (await browser.newContext({ baseURL: server.url })).newPage();
    collectProblems(page);
    const { sockets } = await watchSockets(page);
    await signIn(page, 'Watcher');
    await page.goto('/room/frozen');
    await expectState(page, 'live');
    await say(page, 'before the freeze');
    await expect(messages(page)).toHaveText(['before the freeze']);

    server.freeze();
    // Typed while the server is frozen: it leaves the box and waits in the outbox.
    await say(page, 'typed during the freeze');
    await expect(page.locator('.outbox-entry .text')).toHaveText(['typed during the freeze']);
    // 2 s of silence, plus the time for the page to notice: well within 5 s.
    await expect(badge(page)).not.toHaveAttribute('data-state', 'live', { timeout: 5_000 });
    await expect(page.locator('.outbox-entry')).toHaveCount(1);
    // The page gave up on the silent socket itself; the server never closed it.
    await expect.poll(() => sockets[0].closedByPage).toBe(1000);
    expect(sockets[0].closedByServer).toBeUndefined();
    server.thaw();
    await expectState(page, 'live', 20_000);
    // Delivered exactly once, though it may have been sent on both connections.
    await expect(page.locator('.outbox-entry')).toHaveCount(0);
    await say(page, 'after the thaw');
    await expect(messages(page)).toHaveText(['before the freeze', 'typed during the freeze', 'after the thaw']);
    expectNoProblems(page);
  });
});

test('online and visibility events skip the backoff wait; leaving ends the retries', async ({ browser }) => {
  await withServer(new ChorusServer(3205), async (server) => {
    const page = await (await browser.newContext({ baseURL: server.url })).newPage();
    collectProblems(page);
    const sockets: string[] = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await signIn(page, 'Waker');
    await page.goto('/room/wakeups');
    await expectState(page, 'live');

    for (const wake of ['online', 'visibilitychange']) {
      await server.stop();
      // From attempt 5 on a retry waits at least 4 s: long enough to tell a wake from the timer.
      await expect(badge(page)).toHaveText(/\(attempt ([5-9]|\d{2,})\)$/, { timeout: 15_000 });
      await server.start();
      await page.evaluate((type) => {
        const target = type === 'online' ? window : document;
        target.dispatchEvent(new Event(type));
      }, wake);
      await expectState(page, 'live', 2_500);
    }

    // Down again; leaving the page must stop the retries for good.
    await server.stop();
    await expectState(page, 'reconnecting');
    await page.getByRole('link', { name: '← Leave' }).click();
    await expect(page).toHaveURL(/\/$/);
    const attempts = sockets.length;
    await server.start();
    await page.waitForTimeout(3_000);
    expect(sockets).toHaveLength(attempts);
    expect(await server.rooms()).toEqual([]);
    expectNoProblems(page);
  });
});
