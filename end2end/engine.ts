// Which hub engine the end-to-end run exercises: in-memory rooms (default) or, with
// CHORUS_E2E_ENGINE=redis, every server on a redis-server that Playwright starts.
export const REDIS_PORT = 3299;

export const redisUrl: string | undefined =
  process.env.CHORUS_E2E_ENGINE === 'redis' ? `redis://127.0.0.1:${REDIS_PORT}` : undefined;

/** Server flags for the engine; `db` keeps each test server's keys apart. */
export function engineArgs(db: number): string[] {
  return redisUrl ? ['--redis-url', `${redisUrl}/${db}`] : [];
}
