// Schemas built on first use. The SDK's reused V8 context evaluates the workflow modules again
// for every workflow (each has its own module cache), so a zod schema built at import is built for
// every workflow, used or not: measured in the README ("Workflow tasks").

/**
 * `build()`'s value, built the first time anything reads it, then kept. It stands in for the value
 * everywhere (methods run on the built value itself, so a schema nested in another is the real one).
 */
export function lazySchema<T extends object>(build: () => T): T {
  let built: T | undefined;
  const value = (): T => (built ??= build());
  return new Proxy({} as T, {
    get: (_, key) => {
      const v = value();
      const member: unknown = Reflect.get(v, key, v);
      return typeof member === 'function' ? member.bind(v) : member;
    },
    has: (_, key) => Reflect.has(value(), key),
    ownKeys: () => Reflect.ownKeys(value()),
    // Reported configurable: the proxy's own (empty) target does not hold them.
    getOwnPropertyDescriptor: (_, key) => {
      const d = Reflect.getOwnPropertyDescriptor(value(), key);
      return d && { ...d, configurable: true };
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(value()),
  });
}
