"""Fires chat completions at `ratesim serve` with the official OpenAI Python
SDK, at its default retry settings, and prints what the SDK returned.

Reads a JSON plan as the first line of stdin:
  {"scenarios": [{"name": "...", "base_url": "http://127.0.0.1:PORT/v1",
                  "sequential": false, "prefill": false,
                  "requests": [{"id": "r1", "key": "sk-a", "stream": false}]}]}
For a scenario with "prefill": true it prints {"ready": NAME} and waits for a
line on stdin before sending (the test fills the key's allowance meanwhile).
Scenarios run one after another (so the SDK's event loop is not busy with
another scenario's requests when a retry is due); within one, the requests
are sent together (or one after another with "sequential": true). Each request carries its id in
`X-Client-Request-Id`, which the server logs, so the server log gives each
request's attempts. Prints one JSON line per request:
  {"scenario", "id", "ok", "status", "error"}
and first a line naming the SDK and its version.
"""

import asyncio
import json
import sys

import openai


async def one(client, scenario, req):
    kwargs = dict(
        model="ratesim-test",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"X-Client-Request-Id": req["id"]},
    )
    try:
        if req.get("stream"):
            stream = await client.chat.completions.create(stream=True, **kwargs)
            async for _ in stream:
                pass
        else:
            await client.chat.completions.create(**kwargs)
        return {"scenario": scenario, "id": req["id"], "ok": True, "status": 200, "error": None}
    except openai.APIStatusError as e:
        return {"scenario": scenario, "id": req["id"], "ok": False, "status": e.status_code, "error": type(e).__name__}
    except openai.APIError as e:
        return {"scenario": scenario, "id": req["id"], "ok": False, "status": None, "error": type(e).__name__}


async def scenario(s):
    # One client per key, as an application holds one per credential; the
    # SDK's defaults otherwise (max_retries=2, its own backoff).
    clients = {}
    for r in s["requests"]:
        if r["key"] not in clients:
            clients[r["key"]] = openai.AsyncOpenAI(base_url=s["base_url"], api_key=r["key"])
    if s.get("prefill"):
        # Warm the SDK up (imports, connection pool) on a key of its own and
        # without a request id, so that after "go" it sends at once.
        warm = openai.AsyncOpenAI(base_url=s["base_url"], api_key="sk-warm-up")
        await warm.chat.completions.create(model="ratesim-test", messages=[{"role": "user", "content": "hi"}])
        await warm.close()
        print(json.dumps({"ready": s["name"]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if s.get("sequential"):
        out = [await one(clients[r["key"]], s["name"], r) for r in s["requests"]]
    else:
        out = await asyncio.gather(*(one(clients[r["key"]], s["name"], r) for r in s["requests"]))
    for c in clients.values():
        await c.close()
    return out


async def main():
    plan = json.loads(sys.stdin.readline())
    print(json.dumps({"sdk": "openai-python", "version": openai.__version__}), flush=True)
    for s in plan["scenarios"]:
        for r in await scenario(s):
            print(json.dumps(r), flush=True)


asyncio.run(main())
