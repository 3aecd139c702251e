// Drives the official @actions/cache client for cache-heal's interop tests and benchmark.
//
//   node run.mjs save    '{"key": "k", "paths": ["data", "~/.cache/uv"]}'
//   node run.mjs restore '{"key": "k", "restore_keys": ["k-"], "paths": [...]}'
//
// The environment carries what the runner gives a JavaScript action: ACTIONS_RESULTS_URL,
// ACTIONS_RUNTIME_TOKEN, ACTIONS_CACHE_SERVICE_V2, GITHUB_WORKSPACE, RUNNER_TEMP. Paths resolve
// against the current directory, member names against GITHUB_WORKSPACE, as in actions/cache.
// The client logs through @actions/core on stdout, so the result is the last line, prefixed
// with `RESULT `.
import * as cache from '@actions/cache';

const [command, json] = process.argv.slice(2);
const args = JSON.parse(json);
const started = process.hrtime.bigint();
let result;
if (command === 'save') {
  const id = await cache.saveCache(args.paths, args.key);
  result = { cache_id: id };
} else if (command === 'restore') {
  const matched = await cache.restoreCache(args.paths, args.key, args.restore_keys ?? []);
  result = { matched_key: matched ?? null };
} else {
  console.error(`unknown command ${command}; expected save or restore`);
  process.exit(2);
}
result.seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(`RESULT ${JSON.stringify(result)}`);
