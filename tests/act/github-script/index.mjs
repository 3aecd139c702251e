// The stand-in for actions/github-script (see action.yml). What it copies from the real action
// (src/main.ts and src/async-function.ts at the pinned commit), in its own code:
//
// - `script` becomes the body of an AsyncFunction whose parameters are the names of the values
//   handed to it, called with those values and awaited;
// - the values are `core` (the real @actions/core, from tests/node), `context` (the event and
//   the GITHUB_* variables) and `require`, which resolves paths and packages from the working
//   directory, as github-script's wrapped `require` does; `process` and every other global are
//   there because the function runs in this process;
// - the return value becomes the `result` output, JSON-encoded unless `result-encoding` is
//   `string`;
// - a throw or a rejected promise fails the step with `Unhandled error: <error>`.
import * as core from '@actions/core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

function fail(err) {
  console.error(err);
  core.setFailed(`Unhandled error: ${err}`);
}

process.on('unhandledRejection', fail);

function makeContext() {
  const env = process.env;
  let payload = {};
  if (env.GITHUB_EVENT_PATH) {
    try {
      payload = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8'));
    } catch (err) {
      core.debug(`could not read the event payload: ${err}`);
    }
  }
  const [owner = '', repo = ''] = (env.GITHUB_REPOSITORY || '').split('/');
  return {
    payload,
    eventName: env.GITHUB_EVENT_NAME,
    sha: env.GITHUB_SHA,
    ref: env.GITHUB_REF,
    workflow: env.GITHUB_WORKFLOW,
    action: env.GITHUB_ACTION,
    actor: env.GITHUB_ACTOR,
    job: env.GITHUB_JOB,
    runAttempt: Number(env.GITHUB_RUN_ATTEMPT),
    runNumber: Number(env.GITHUB_RUN_NUMBER),
    runId: Number(env.GITHUB_RUN_ID),
    serverUrl: env.GITHUB_SERVER_URL || 'https://github.com',
    apiUrl: env.GITHUB_API_URL || 'https://api.github.com',
    graphqlUrl: env.GITHUB_GRAPHQL_URL || 'https://api.github.com/graphql',
    repo: { owner, repo },
  };
}

async function main() {
  const script = core.getInput('script', { required: true });
  const args = {
    require: createRequire(path.join(process.cwd(), 'github-script-stand-in.js')),
    context: makeContext(),
    core,
  };
  const AsyncFunction = Object.getPrototypeOf(async () => null).constructor;
  const run = new AsyncFunction(...Object.keys(args), script);
  const result = await run(...Object.values(args));

  const encoding = core.getInput('result-encoding') || 'json';
  if (encoding === 'json') {
    core.setOutput('result', JSON.stringify(result));
  } else if (encoding === 'string') {
    core.setOutput('result', String(result));
  } else {
    throw new Error('"result-encoding" must be either "string" or "json"');
  }
}

main().catch(fail);
