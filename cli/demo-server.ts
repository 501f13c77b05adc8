// A small static file server for the browser demo and the browser tests, bound to 127.0.0.1 only.
// It serves the project's own files and nothing else:
//   /            -> web/index.html (the demo page)
//   /web/...     -> web/            (pages, styles)
//   /dist/web/...-> <dist>/web/     (the esbuild bundles made by `npm run build`)
//   /files/...   -> --files DIR     (optional: e.g. checkpoints written by Node, to load by URL)
// Usage: node cli/demo.js [--port 8080] [--dist dist] [--files DIR]
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, formatHelp, ArgsError, type OptionSpec } from './args.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
  '.wasm': 'application/wasm',
};

export interface DemoServerOptions {
  /** 0 picks a free port. */
  port: number;
  /** The project root (holds web/ and the dist folder). */
  root: string;
  /** The build folder, relative to root (default 'dist'). */
  dist?: string;
  /** An extra folder served under /files/ (absent: nothing there). */
  files?: string;
  /** Log each request to stderr. */
  log?: boolean;
}

export interface DemoServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Maps a URL path to a file inside one of the mounts, or undefined (outside every mount). */
export function resolvePath(urlPath: string, mounts: [prefix: string, dir: string][]): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(urlPath.split('?')[0]!.split('#')[0]!);
  } catch {
    return undefined;
  }
  if (path.includes('\0')) return undefined;
  if (path === '/') path = '/web/index.html';
  for (const [prefix, dir] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const base = resolve(dir);
    const file = resolve(base, '.' + path.slice(prefix.length - 1));
    // `..` segments that climb out of the mount are refused rather than followed.
    if (file !== base && !file.startsWith(base + sep)) return undefined;
    return file;
  }
  return undefined;
}

export async function startDemoServer(opts: DemoServerOptions): Promise<DemoServer> {
  const mounts: [string, string][] = [
    ['/web/', join(opts.root, 'web')],
    ['/dist/web/', join(opts.root, opts.dist ?? 'dist', 'web')],
  ];
  if (opts.files) mounts.push(['/files/', resolve(opts.files)]);
  const server = createServer(async (req, res) => {
    const send = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    let file = resolvePath(req.url ?? '/', mounts);
    if (!file) return send(404, 'not found\n');
    try {
      let s = await stat(file);
      if (s.isDirectory()) {
        file = join(file, 'index.html');
        s = await stat(file);
      }
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        'content-length': body.length,
        // A rebuilt bundle must never be served stale from the browser's cache.
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      if (opts.log) console.error(`${req.method} ${req.url} 200`);
    } catch {
      if (opts.log) console.error(`${req.method} ${req.url} 404`);
      send(404, 'not found\n');
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port, '127.0.0.1', () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    server,
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

const SPECS: OptionSpec[] = [
  { name: 'port', type: 'number', default: 8080, help: 'port on 127.0.0.1 (0 picks a free one)' },
  { name: 'dist', type: 'string', default: 'dist', metavar: 'DIR', help: 'the build folder holding web/ bundles' },
  { name: 'files', type: 'string', metavar: 'DIR', help: 'also serve DIR under /files/ (e.g. checkpoints to load by URL)' },
  { name: 'log', type: 'boolean', help: 'log requests' },
  { name: 'help', short: 'h', type: 'boolean', help: 'show this help' },
];
const USAGE = 'node cli/demo.js [--port 8080] [--dist dist] [--files DIR]';

/** The `npm run demo` entry point; returns the exit code, or never returns while serving. */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs(argv, SPECS));
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    console.error(`demo: ${e.message}\n\n${formatHelp(USAGE, SPECS)}`);
    return 2;
  }
  if (values.help) {
    console.log(formatHelp(USAGE, SPECS));
    return 0;
  }
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const dist = String(values.dist);
  try {
    await stat(join(root, dist, 'web', 'demo.js'));
  } catch {
    console.error(`demo: ${join(dist, 'web', 'demo.js')} is missing; run npm run build first`);
    return 1;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`demo: --port must be an integer in 0..65535, got ${values.port}`);
    return 2;
  }
  try {
    const s = await startDemoServer({ port, root, dist, files: values.files as string | undefined, log: !!values.log });
    console.log(`demo: serving ${s.url} (Ctrl-C stops)`);
  } catch (e) {
    console.error(`demo: cannot listen on 127.0.0.1:${port}: ${(e as Error).message}`);
    return 1;
  }
  return await new Promise<number>(() => {});
}
