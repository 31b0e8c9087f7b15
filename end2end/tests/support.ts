import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { expect, type Browser, type BrowserContextOptions, type Page, type WebSocketRoute } from '@playwright/test';
import { engineArgs, redisUrl } from '../engine';

export const onRedis = redisUrl !== undefined;

const repoRoot = path.resolve(__dirname, '..', '..');
export const SECRET = 'end2end-secret-of-at-least-32-bytes';
/** The main server's `--api-key` (playwright.config.ts). */
export const API_KEY = 'end2end-api-key-of-at-least-32-chars';

/** A release server of our own, for tests that stop, restart or reconfigure it. */
export class ChorusServer {
  private child: ChildProcess | null = null;
  readonly url: string;

  constructor(
    readonly port: number,
    private readonly extraArgs: string[] = [],
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      path.join(repoRoot, 'target/release/chorus'),
      ['--addr', `127.0.0.1:${this.port}`, '--jwt-secret', SECRET, ...engineArgs(this.port - 3200), ...this.extraArgs],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.child = child;
    // Ready when this child says it listens: a health check could be answered by
    // another process left on the port, which the test would then freeze or stop
    // in vain. The log is read to the end so the server never blocks on it.
    const listening = `listening on ${this.url}`;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chorus did not start on ${this.url}`)), 15_000);
      let seen = '';
      let ready = false;
      child.stdout!.on('data', (chunk: Buffer) => {
        if (ready) return;
        seen += chunk.toString();
        if (seen.includes(listening)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`chorus exited with ${code} before listening on ${this.url}`));
      });
    });
  }

  /** SIGTERM and wait for the exit: sockets are closed with 1001. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    await exited;
    this.child = null;
  }

  /** SIGSTOP: the process stops answering, but its sockets stay open. */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  /** SIGCONT after `freeze`. */
  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** `GET /api/rooms` as a guest sees it (every room, with the default `--guest-rooms`). */
  async rooms(): Promise<{ name: string; members: number; connections: number }[]> {
    const signIn = await fetch(`${this.url}/api/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'observer' }),
    });
    const { token } = await signIn.json();
    return (await fetch(`${this.url}/api/rooms`, { headers: { authorization: `Bearer ${token}` } })).json();
  }
}

/** Runs `body` with `server` started, and stops the server however `body` ends. */
export async function withServer(
  server: ChorusServer,
  body: (server: ChorusServer) => Promise<void>,
): Promise<void> {
  await server.start();
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

/** Signs in through the home page form. */
export async function signIn(page: Page, name: string, baseURL = ''): Promise<void> {
  await page.goto(`${baseURL}/`);
  // Typed before hydration, the name could be wiped or submitted as a plain form.
  await page.locator('body[data-hydrated]').waitFor();
  await page.getByLabel('Display name').fill(name);
  await page.getByRole('button', { name: 'Continue' }).click();
  await expect(page.locator('.me')).toHaveText(name);
}

/** A signed-in page in its own browser context (its own localStorage). */
export async function member(
  browser: Browser,
  name: string,
  baseURL?: string,
  options: BrowserContextOptions = {},
): Promise<Page> {
  const context = await browser.newContext(baseURL ? { ...options, baseURL } : options);
  const page = await context.newPage();
  collectProblems(page);
  await signIn(page, name);
  return page;
}

/** A chat socket of a page, as routed through the test by `watchSockets`. */
export interface WatchedSocket {
  route: WebSocketRoute;
  url: string;
  /** The close code the server sent, if the server closed it. */
  closedByServer?: number;
  /** The close code the page sent, if the page closed it. */
  closedByPage?: number;
}

/**
 * Routes `page`'s chat sockets through the test, recording who closed each and with
 * which code. With `holdReconnects`, every socket after the first (a reconnect)
 * waits until `release()`, so a test can act while the page is away;
 * `dropFromPage` swallows matching frames the page sends.
 */
export async function watchSockets(
  page: Page,
  options: { holdReconnects?: boolean; dropFromPage?: (frame: Record<string, unknown>) => boolean } = {},
): Promise<{ sockets: WatchedSocket[]; release: () => void }> {
  const sockets: WatchedSocket[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  // Codes a close frame may not carry (they only describe a close).
  const sendable = (code: number | undefined) => (code === undefined || [1005, 1006, 1015].includes(code) ? {} : { code });
  await page.routeWebSocket(/\/ws\/chat\//, async (ws) => {
    const watched: WatchedSocket = { route: ws, url: ws.url() };
    sockets.push(watched);
    if (options.holdReconnects && sockets.length > 1) await gate;
    const server = ws.connectToServer();
    ws.onMessage((frame) => {
      if (typeof frame === 'string' && options.dropFromPage?.(JSON.parse(frame))) return;
      server.send(frame);
    });
    server.onClose((code, reason) => {
      watched.closedByServer ??= code;
      ws.close({ ...sendable(code), reason });
    });
    ws.onClose((code, reason) => {
      watched.closedByPage ??= code;
      server.close({ ...sendable(code), reason });
    });
  });
  return { sockets, release };
}

/** A WebSocket the page opened: its URL and the subprotocols it offered. */
export interface OfferedSocket {
  url: string;
  protocols: string[];
}

/**
 * Records, inside the page, every WebSocket it opens (tokens travel as subprotocols,
 * which Playwright's routes do not show); the returned function reads the list of
 * the current document.
 */
export async function recordOfferedSockets(page: Page): Promise<() => Promise<OfferedSocket[]>> {
  await page.addInitScript(() => {
    const Original = window.WebSocket;
    const opened: { url: string; protocols: string[] }[] = [];
    (window as unknown as { __offered: typeof opened }).__offered = opened;
    window.WebSocket = class extends Original {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        opened.push({ url: String(url), protocols: protocols === undefined ? [] : [protocols].flat() });
      }
    };
  });
  return () => page.evaluate(() => (window as unknown as { __offered?: OfferedSocket[] }).__offered ?? []);
}

/** The token a socket offered as its `chorus.token.<JWT>` subprotocol. */
export function offeredToken(socket: OfferedSocket): string | undefined {
  const prefix = 'chorus.token.';
  return socket.protocols.find((protocol) => protocol.startsWith(prefix))?.slice(prefix.length);
}

/** `watchSockets` with every reconnect held until `release()`. */
export async function holdReconnects(page: Page): Promise<{ sockets: WatchedSocket[]; release: () => void }> {
  return watchSockets(page, { holdReconnects: true });
}

export async function openRoom(page: Page, room: string): Promise<void> {
  await page.goto(`/room/${room}`);
  await page.locator('body[data-hydrated]').waitFor();
  await expectState(page, 'live');
}

export function badge(page: Page) {
  return page.locator('.badges [data-state]');
}

export async function expectState(page: Page, state: string, timeout = 10_000): Promise<void> {
  await expect(badge(page)).toHaveAttribute('data-state', state, { timeout });
}

export async function say(page: Page, text: string): Promise<void> {
  const input = page.getByLabel('Message', { exact: true });
  await input.fill(text);
  await input.press('Enter');
  await expect(input).toHaveValue('');
  await expect(input).toBeFocused();
}

/**
 * `say`, then wait until the server has acknowledged it (the outbox is empty again):
 * the next message, from any page, is then ordered after it. `say` alone returns
 * once the text is in the outbox, so two pages saying one after the other race.
 */
export async function sayDelivered(page: Page, text: string): Promise<void> {
  await say(page, text);
  await expect(page.locator('.outbox-entry')).toHaveCount(0);
  await expect(messages(page).filter({ hasText: text })).not.toHaveCount(0);
}

export function messages(page: Page) {
  return page.locator('.messages .message .text');
}

/** Console errors and uncaught exceptions, checked by `expectNoProblems`. */
const problems = new WeakMap<Page, string[]>();

export function collectProblems(page: Page): void {
  const seen: string[] = [];
  problems.set(page, seen);
  page.on('console', (message) => {
    // Tests stop servers on purpose; the browser logs the failed connections itself
    // (refused, reset, not connected, ...). HTTP error statuses still count.
    const expected = /WebSocket connection to .* failed|Failed to load resource: net::ERR_/;
    // A CSP violation is logged as an error too, so every test checks there is none.
    if (message.type() === 'error' && !expected.test(message.text())) {
      seen.push(message.text());
    }
  });
  page.on('pageerror', (error) => seen.push(error.message));
}

export function expectNoProblems(page: Page): void {
  expect(problems.get(page) ?? []).toEqual([]);
}

/** The claims of a JWT (no verification). */
export function tokenClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

/** An HS256 token signed with the test servers' secret. */
export function signToken(claims: Record<string, unknown>): string {
  const encode = (part: object) => Buffer.from(JSON.stringify(part)).toString('base64url');
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
  const signature = createHmac('sha256', SECRET).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}
