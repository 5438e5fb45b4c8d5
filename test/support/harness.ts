import type { Express } from 'express';
import { testApp } from './app.js';
import { buildTenant, type TestTenant } from './factories.js';

type Env = Record<string, string>;

/**
 * The app for every test of the calling `describe`, built once in its `before` hook.
 * Call it inside a `describe`: at the top of a file its hook would run for every file.
 * `env` may be a function when it needs what an earlier `before` made (an SMTP server's URL).
 */
export function useApp(env: Env | (() => Env) = {}): Express {
  const app = lateBound<Express>('useApp()', () => undefined);
  before(async () => {
    app.bind(await testApp(typeof env === 'function' ? env() : env));
  });
  return app.value;
}

/** A fresh tenant for each test of the calling `describe`, built in its `beforeEach` hook. */
export function useTenant(opts: Parameters<typeof buildTenant>[0] = {}): TestTenant {
  const tenant = lateBound<TestTenant>('useTenant()', {});
  beforeEach(async () => {
    tenant.bind(await buildTenant(opts));
  });
  return tenant.value;
}

/**
 * A stand-in that forwards every use to the object bound by a hook, so a test reads
 * `request(app)` and `t.admin` as if it held the object itself. The stand-in is typed as
 * what it stands for; reading it before its hook has run names the helper and throws.
 * A function target lets the app be called (supertest serves it with `http.createServer`).
 */
function lateBound<T extends object>(name: string, target: object): { value: T; bind(v: T): void } {
  let bound: T | undefined;
  const current = (): T => {
    if (bound === undefined)
      throw new Error(
        `${name} read before its mocha hook ran: call it inside a describe, read it inside a test or hook`,
      );
    return bound;
  };
  const handler: ProxyHandler<object> = {
    get(_, key) {
      const v: unknown = Reflect.get(current(), key);
      // Methods run on the object itself, not on the stand-in (express reads its own fields through `this`).
      return typeof v === 'function' ? v.bind(current()) : v;
    },
    has: (_, key) => Reflect.has(current(), key),
    ownKeys: () => Reflect.ownKeys(current()),
    getOwnPropertyDescriptor(_, key) {
      const d = Reflect.getOwnPropertyDescriptor(current(), key);
      // A proxy may only report a property its target lacks as configurable.
      return d && { ...d, configurable: true };
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(current()),
    apply: (_, thisArg, args: unknown[]) => Reflect.apply(current() as (...a: unknown[]) => unknown, thisArg, args),
    set() {
      throw new Error(`${name} is bound by its hook; assign to what it returns, not to it`);
    },
  };
  return {
    value: new Proxy(target, handler) as T,
    bind(v) {
      bound = v;
    },
  };
}
