// Fires chat completions at `ratesim serve` with the official OpenAI Node
// SDK (tests/peers/node/node_modules, installed by .ci/install-peers), at
// its default retry settings, and prints what the SDK returned.
//
// Same protocol as tests/peers/python/sdk_retries.py: a JSON plan on the
// first line of stdin, "ready"/go handshakes for prefilled scenarios,
// scenarios run one after another, one JSON line per request on stdout
// (after a line naming the SDK).

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';

const { version } = JSON.parse(readFileSync(new URL('./node_modules/openai/package.json', import.meta.url), 'utf8'));

async function one(client, scenario, req) {
  const params = { model: 'ratesim-test', messages: [{ role: 'user', content: 'hello' }] };
  const options = { headers: { 'X-Client-Request-Id': req.id } };
  try {
    if (req.stream) {
      const stream = await client.chat.completions.create({ ...params, stream: true }, options);
      for await (const _ of stream) {
        // drain
      }
    } else {
      await client.chat.completions.create(params, options);
    }
    return { scenario, id: req.id, ok: true, status: 200, error: null };
  } catch (e) {
    if (e instanceof OpenAI.APIError) {
      return { scenario, id: req.id, ok: false, status: e.status ?? null, error: e.constructor.name };
    }
    throw e;
  }
}

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function scenario(s) {
  // One client per key; the SDK's defaults otherwise (maxRetries 2).
  const clients = new Map();
  for (const r of s.requests) {
    if (!clients.has(r.key)) clients.set(r.key, new OpenAI({ baseURL: s.base_url, apiKey: r.key }));
  }
  if (s.prefill) {
    // Warm the SDK up on a key of its own, without a request id, so that
    // after "go" it sends at once.
    const warm = new OpenAI({ baseURL: s.base_url, apiKey: 'sk-warm-up' });
    await warm.chat.completions.create({ model: 'ratesim-test', messages: [{ role: 'user', content: 'hi' }] });
    console.log(JSON.stringify({ ready: s.name }));
    await stdin.next();
  }
  if (s.sequential) {
    const out = [];
    for (const r of s.requests) out.push(await one(clients.get(r.key), s.name, r));
    return out;
  }
  return Promise.all(s.requests.map((r) => one(clients.get(r.key), s.name, r)));
}

const plan = JSON.parse((await stdin.next()).value);
console.log(JSON.stringify({ sdk: 'openai-node', version }));
// Scenarios one after another, as in the Python script.
for (const s of plan.scenarios) {
  for (const r of await scenario(s)) console.log(JSON.stringify(r));
}
process.exit(0); // stdin stays open
