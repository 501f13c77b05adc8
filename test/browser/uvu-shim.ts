// Stands in for `uvu` inside the browser test bundle (web/build.js aliases the import): the test
// files register their cases with `test(name, fn)` and `test.run()` exactly as under Node, and the
// page harness (harness.ts) runs them one by one after every file is loaded, so each case gets its own result and timing.
// `uvu/assert` stays the real one.

export type Handler = () => unknown | Promise<unknown>;

export interface Case {
  name: string;
  fn: Handler;
}

export interface Group {
  cases: Case[];
  skipped: number;
}

/** Cases registered since the last `test.run()`, and the groups closed by each `test.run()`. */
const registry = { pending: [] as Case[], skipped: 0, groups: [] as Group[] };

/** The groups so far, one per `test.run()` call, in call order (each test file makes one). */
export function takeGroups(): Group[] {
  const out = registry.groups;
  registry.groups = [];
  return out;
}

type Hook = (fn: Handler) => void;
export interface Test {
  (name: string, fn: Handler): void;
  run(): void;
  only(name: string, fn: Handler): void;
  skip(name?: string, fn?: Handler): void;
  before: Hook & { each: Hook };
  after: Hook & { each: Hook };
}

function unsupported(what: string): Hook & { each: Hook } {
  const hook = (() => {
    throw new Error(`browser test shim: ${what} hooks are not supported; use plain test() cases`);
  }) as unknown as Hook & { each: Hook };
  hook.each = hook;
  return hook;
}

function makeTest(): Test {
  const t = ((name: string, fn: Handler) => {
    registry.pending.push({ name, fn });
  }) as Test;
  t.run = () => {
    registry.groups.push({ cases: registry.pending, skipped: registry.skipped });
    registry.pending = [];
    registry.skipped = 0;
  };
  // `only` would silently drop every other case of the file in Node; here it is an ordinary case.
  t.only = (name, fn) => registry.pending.push({ name, fn });
  t.skip = () => {
    registry.skipped++;
  };
  t.before = unsupported('before');
  t.after = unsupported('after');
  return t;
}

export const test: Test = makeTest();
export function suite(): Test {
  return test;
}
