// Builds dist/: src/cli.ts and everything it imports (dependencies included) bundled by
// esbuild into one ES module, with the parts loaded on first use (the HTTP API and pages,
// git, metrics, the client commands) split into chunks under dist/chunks/. One file instead
// of ~230 modules takes about a fifth off the daemon's start-up on Node 20 (see
// docs/benchmarks-record.md, section 5). Type checking is `npm run typecheck`.
import { chmod, rm } from 'node:fs/promises';
import { build } from 'esbuild';

await rm('dist', { recursive: true, force: true });
await build({
  // The placing thread and the capture thread run entries of their own (see
  // src/store/file-placer.ts and src/log/capture-thread.ts).
  entryPoints: { cli: 'src/cli.ts', 'place-worker': 'src/store/place-worker.ts', 'capture-worker': 'src/log/capture-worker.ts' },
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  sourcemap: true,
  // Bundled CommonJS dependencies call require() for Node's own modules.
  banner: { js: "import { createRequire as __deployhookRequire } from 'node:module'; const require = __deployhookRequire(import.meta.url);" },
  logLevel: 'warning',
});
await chmod('dist/cli.js', 0o755);
