// The placing thread's entry (built to dist/place-worker.js): puts batches of files in place
// with synchronous system calls and answers each batch with one failure (or null) per file.
import { parentPort } from 'node:worker_threads';
import { placeAllSync, type Placement } from './place-files.js';

parentPort?.on('message', (message: { id: number; placements: Placement[] }) => {
  parentPort?.postMessage({ id: message.id, failures: placeAllSync(message.placements).map((failure) => failure ?? null) });
});
