// A small command-line parser: declared options (--name value, --name=value, boolean --flag and
// --no-flag), positionals, generated help, and errors that say what is wrong.

export type OptionType = 'string' | 'number' | 'boolean';
export type OptionValue = string | number | boolean;

export interface OptionSpec {
  /** Long name without dashes, e.g. 'iou-type'. */
  name: string;
  type: OptionType;
  help: string;
  /** One-letter alias without the dash, e.g. 'h'. */
  short?: string;
  default?: OptionValue;
  /** Allowed values for string options. */
  choices?: readonly string[];
  /** Placeholder for the value in help, e.g. 'FILE'. */
  metavar?: string;
}

export interface ParsedArgs {
  /** Values by option name (defaults filled in; absent options without a default are missing). */
  values: Record<string, OptionValue | undefined>;
  positionals: string[];
}

export class ArgsError extends Error {}

/** Parses argv (without node and script) against the specs; throws ArgsError on bad input. */
export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const values: Record<string, OptionValue | undefined> = {};
  for (const s of specs) if (s.default !== undefined) values[s.name] = s.default;
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break; }
    let spec: OptionSpec | undefined, inline: string | undefined, negated = false;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      if (eq >= 0) inline = arg.slice(eq + 1);
      spec = byName.get(name);
      if (!spec && name.startsWith('no-')) {
        const s = byName.get(name.slice(3));
        if (s && s.type === 'boolean') { spec = s; negated = true; }
      }
      if (!spec) throw new ArgsError(`unknown option --${name}${suggest(name, specs)}`);
    } else if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) {
      spec = byShort.get(arg.slice(1));
      if (!spec) throw new ArgsError(`unknown option ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    if (spec.type === 'boolean') {
      if (inline !== undefined) {
        if (!/^(true|false|1|0)$/.test(inline)) throw new ArgsError(`--${spec.name} takes no value (or true/false), got '${inline}'`);
        values[spec.name] = inline === 'true' || inline === '1';
      } else values[spec.name] = !negated;
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      if (i + 1 >= argv.length) throw new ArgsError(`--${spec.name} needs a value${spec.metavar ? ` (${spec.metavar})` : ''}`);
      raw = argv[++i];
    }
    if (spec.type === 'number') {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) throw new ArgsError(`--${spec.name} must be a number, got '${raw}'`);
      values[spec.name] = v;
    } else {
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new ArgsError(`--${spec.name} must be one of ${spec.choices.join(', ')} (got '${raw}')`);
      }
      values[spec.name] = raw;
    }
  }
  return { values, positionals };
}

function suggest(name: string, specs: readonly OptionSpec[]): string {
  const close = specs.find((s) => s.name.includes(name) || name.includes(s.name));
  return close ? ` (did you mean --${close.name}?)` : '';
}

/** Help text: a usage line and one line per option. */
export function formatHelp(usage: string, specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.type === 'boolean' ? '' : ` ${s.metavar ?? (s.choices ? s.choices.join('|') : s.type.toUpperCase())}`}`;
    const def = s.default !== undefined && s.type !== 'boolean' ? ` (default: ${s.default})` : '';
    return [flag, s.help + def] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  return [`usage: ${usage}`, '', 'options:', ...rows.map(([f, h]) => `  ${f.padEnd(w)}${h}`)].join('\n');
}
