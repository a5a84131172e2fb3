-- wrk script: chat completions on many API keys, for `ratesim serve`.
--   wrk -t2 -c64 -d10s -s tests/peers/wrk/chat.lua http://127.0.0.1:8080
-- RATESIM_KEYS (default 1000) keys named load-0 ... load-(N-1), taken in
-- turn by each wrk thread.
local keys = tonumber(os.getenv("RATESIM_KEYS") or "1000")
local n = 0
local body = '{"model":"load","messages":[{"role":"user","content":"hello"}]}'

request = function()
  n = n + 1
  local headers = {
    ["Authorization"] = "Bearer load-" .. tostring(n % keys),
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "/v1/chat/completions", headers, body)
end
