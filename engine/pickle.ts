// A restricted reader for Python pickles (protocols 0-5's binary opcodes, as torch.save and
// pickle.dump write them), enough for checkpoints: dicts, lists, tuples, strings, bytes, numbers,
// and objects built by a small allow-list of reconstructors that the CALLER supplies. Any other
// global (os.system, builtins.eval, ...) is refused with an error naming it, and nothing is ever
// executed: a hostile file can only make loading fail. Like Python's pickle, it is a stack machine
// with a memo; see CPython's Lib/pickle.py for the opcode meanings.

/** What pickle values become: JS primitives, bigint for large ints, arrays for lists and tuples
 *  (tuples are frozen), Map for dicts, and whatever the allowed globals build. */
export type PickleValue = unknown;

/** A callable global from the allow-list: REDUCE calls it with the argument tuple, NEWOBJ too. */
export interface PickleGlobal {
  /** "module.name", for error messages. */
  name: string;
  call(args: PickleValue[]): PickleValue;
}

/** An object a global built, which BUILD may then update (setstate). */
export interface Buildable {
  setState(state: PickleValue): void;
}

export interface PickleOptions {
  /** Resolves GLOBAL / STACK_GLOBAL; return undefined to refuse (an error names the global). */
  findGlobal(module: string, name: string): PickleGlobal | undefined;
  /** Resolves BINPERSID / PERSID (torch's storages); absent: persistent ids are refused. */
  persistentLoad?(pid: PickleValue): PickleValue;
  /** Where the pickle starts in `bytes` (several pickles may follow one another). */
  offset?: number;
  /** For error messages. */
  source?: string;
}

const MARK = Symbol('mark');
const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

function isBuildable(v: unknown): v is Buildable {
  return typeof v === 'object' && v !== null && typeof (v as Buildable).setState === 'function';
}

/** Reads one pickle; returns its value and the offset just after its STOP opcode. */
export function unpickle(bytes: Uint8Array, opts: PickleOptions): { value: PickleValue; end: number } {
  const src = opts.source ?? 'pickle';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = opts.offset ?? 0;
  const stack: PickleValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  const fail = (msg: string): never => {
    throw new Error(`${src}: ${msg} (at byte ${pos})`);
  };
  const need = (n: number): number => {
    if (pos + n > bytes.length) fail('truncated pickle');
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => bytes[need(1)]!;
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const i32 = (): number => view.getInt32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(bytes.length)) fail(`length ${v} exceeds the file`);
    return Number(v);
  };
  const raw = (n: number): Uint8Array => bytes.subarray(need(n), pos);
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('truncated pickle (no newline)');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    if (stack.length <= (marks.at(-1) ?? 0)) fail('stack underflow');
    return stack.pop();
  };
  const top = (): PickleValue => (stack.length ? stack[stack.length - 1] : fail('empty stack'));
  const popMark = (): PickleValue[] => {
    const m = marks.pop();
    if (m === undefined) fail('no mark on the stack');
    return stack.splice(m!);
  };
  const global = (module: string, name: string): PickleGlobal => {
    const g = opts.findGlobal(module, name);
    if (!g) fail(`refuses to load global ${module}.${name} (not a tensor, storage, dict or array reconstructor)`);
    return g!;
  };
  const call = (f: PickleValue, args: PickleValue): PickleValue => {
    if (!(typeof f === 'object' && f !== null && 'call' in f && 'name' in f)) fail('REDUCE on something that is not an allowed global');
    if (!Array.isArray(args)) fail(`${(f as PickleGlobal).name}: arguments are not a tuple`);
    return (f as PickleGlobal).call(args as PickleValue[]);
  };
  const setItems = (d: PickleValue, items: PickleValue[]): void => {
    if (!(d instanceof Map)) fail('SETITEM(S) on a non-dict');
    for (let i = 0; i + 1 < items.length; i += 2) (d as Map<PickleValue, PickleValue>).set(items[i], items[i + 1]);
  };
  const append = (l: PickleValue, items: PickleValue[]): void => {
    if (!Array.isArray(l) || Object.isFrozen(l)) fail('APPEND(S) on a non-list');
    (l as PickleValue[]).push(...items);
  };
  const tuple = (items: PickleValue[]): PickleValue[] => Object.freeze(items) as PickleValue[];
  const long = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: need(8); break; // FRAME (the frame's bytes follow inline)
      case 0x2e: return { value: pop(), end: pos }; // STOP
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(raw(u8()))); break; // LONG1
      case 0x8b: stack.push(long(raw(u32()))); break; // LONG4
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x49: { // INT (text; also True/False as 01/00)
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number(s));
        break;
      }
      case 0x4c: stack.push(Number(line().replace(/L$/, ''))); break; // LONG (text)
      case 0x46: stack.push(Number(line())); break; // FLOAT (text)
      case 0x58: stack.push(utf8.decode(raw(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(utf8.decode(raw(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8.decode(raw(u64()))); break; // BINUNICODE8
      // Python 2 str: bytes, which numpy's arrays of a Python 2 pickle carry their data in.
      case 0x54: stack.push(raw(i32())); break; // BINSTRING
      case 0x55: stack.push(raw(u8())); break; // SHORT_BINSTRING
      case 0x42: stack.push(raw(u32())); break; // BINBYTES
      case 0x43: stack.push(raw(u8())); break; // SHORT_BINBYTES
      case 0x8e: stack.push(raw(u64())); break; // BINBYTES8
      case 0x96: stack.push(raw(u64())); break; // BYTEARRAY8
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x85: stack.push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); stack.push(tuple([pop(), b])); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(); stack.push(tuple([pop(), b, c])); break; } // TUPLE3
      case 0x74: stack.push(tuple(popMark())); break; // TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x64: { const items = popMark(); const d = new Map(); setItems(d, items); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { const items = popMark(); const s = top(); if (!(s instanceof Set)) fail('ADDITEMS on a non-set'); for (const i of items) (s as Set<PickleValue>).add(i); break; }
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) fail(`memo key ${k} is missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: { const module = line(); stack.push(global(module, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof name !== 'string' || typeof module !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); stack.push(call(pop(), args)); break; } // REDUCE
      case 0x81: { const args = pop(); stack.push(call(pop(), args)); break; } // NEWOBJ
      case 0x92: { pop(); const args = pop(); stack.push(call(pop(), args)); break; } // NEWOBJ_EX (kwargs dropped)
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (isBuildable(obj)) obj.setState(state);
        else if (obj instanceof Map) {
          // An OrderedDict's instance attributes (torch's state_dict `_metadata`): not items, ignored.
        } else fail('BUILD on an object that takes no state');
        break;
      }
      case 0x51: { // BINPERSID
        if (!opts.persistentLoad) fail('persistent ids are not allowed in this file');
        stack.push(opts.persistentLoad!(pop()));
        break;
      }
      case 0x50: { // PERSID
        if (!opts.persistentLoad) fail('persistent ids are not allowed in this file');
        stack.push(opts.persistentLoad!(line()));
        break;
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16)}`);
    }
  }
}
