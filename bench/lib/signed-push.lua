-- wrk script: POSTs one fixed, signed GitHub push body with the headers GitHub sends.
-- Every request carries a new X-GitHub-Delivery id (a header, so the signature over the
-- body stays valid) and so is a new delivery, never a duplicate.
--
-- Environment: BENCH_BODY (file with the exact bytes), BENCH_SIGNATURE ("sha256=<hex>"),
-- BENCH_NONCE (a number that keeps ids unique across runs).
-- Prints one line: BENCH rps=... p50_ms=... p99_ms=... requests=... errors=... s200=... s202=... sother=...

local function read_all(path)
  local file = assert(io.open(path, "rb"), "cannot open BENCH_BODY " .. tostring(path))
  local data = file:read("*a")
  file:close()
  return data
end

wrk.method = "POST"
wrk.body = read_all(os.getenv("BENCH_BODY"))
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-GitHub-Hook-ID"] = "42"
wrk.headers["X-Hub-Signature-256"] = assert(os.getenv("BENCH_SIGNATURE"), "BENCH_SIGNATURE is not set")

local nonce = tonumber(os.getenv("BENCH_NONCE") or "0") % 4294967296
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  s200 = 0
  s202 = 0
  sother = 0
end

function request()
  sent = sent + 1
  wrk.headers["X-GitHub-Delivery"] = string.format("%08x-%04x-4000-8000-%012x", nonce, tid, sent)
  return wrk.format()
end

function response(status, headers, body)
  if status == 202 then
    s202 = s202 + 1
  elseif status == 200 then
    s200 = s200 + 1
  else
    sother = sother + 1
  end
end

function done(summary, latency, requests)
  local c200, c202, cother = 0, 0, 0
  for _, thread in ipairs(threads) do
    c200 = c200 + thread:get("s200")
    c202 = c202 + thread:get("s202")
    cother = cother + thread:get("sother")
  end
  local e = summary.errors
  io.write(string.format("BENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d errors=%d s200=%d s202=%d sother=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout + e.status, c200, c202, cother))
end
