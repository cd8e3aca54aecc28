-- wrk script: POSTs one fixed, signed GitHub push body with the headers GitHub sends.
-- Every request carries a new X-GitHub-Delivery id (a header, so the signature over the
-- body stays valid) and so is a new delivery, never a duplicate.
--
-- Environment: BENCH_BODY (file with the exact bytes), BENCH_SIGNATURE ("sha256=<hex>"),
-- BENCH_NONCE (a number that keeps ids unique across runs).
--
-- With BENCH_SLOT_MS set, each wrk thread paces its requests: one every BENCH_SLOT_MS ms
-- (with -t2 and 2 ms, 1,000 req/s in all; the second thread half a slot after the first),
-- spread evenly over time instead of as fast as the connections allow. The slots are kept on
-- the thread's monotonic clock through wrk's documented `delay()` hook: a connection whose
-- reply is back waits for the next free slot. A slot no connection is free for is dropped,
-- not sent late, so give the run enough connections that a stall still sends on schedule: a
-- thread's connections x its slot (256 connections at 1,000 req/s: 128 x 2 ms = 256 ms),
-- less by the replies still in flight. wrk's latency runs from a request's write to its
-- reply's end; before done(), wrk 4.1 adds its own correction for coordinated omission to the
-- histogram (stats_correct, for replies of at least twice the run's time per request and
-- connection).
-- Prints one line: BENCH rps=... p50_ms=... p99_ms=... requests=... errors=... s200=... s202=... sother=... dropped=... late=... late_max_ms=...
-- (dropped: paced slots that passed unsent; late: paced requests wrk itself sent 5 ms or more
-- after their slot, late_max_ms the most; all 0 unpaced)

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
  dropped = 0
  late = 0
  late_max_ms = 0
end

local slot_ms = tonumber(os.getenv("BENCH_SLOT_MS") or "")
if slot_ms then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *tp);
  ]]
  local CLOCK_MONOTONIC = 1
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local next_slot
  -- The slots handed out and not yet sent, oldest first: wrk's timers fire in slot order
  -- (to its millisecond), so request() takes the oldest as its own.
  local slots, first, last = {}, 1, 0
  -- wrk calls delay() before each request of a connection, the first included, and waits
  -- the returned whole milliseconds on its event loop. `dropped` counts the slots that
  -- passed unsent: every connection was waiting for a reply, or wrk itself ran behind.
  function delay()
    local now = now_ms()
    if next_slot == nil then
      next_slot = now + ((tid - 1) % 2) * slot_ms / 2
    elseif next_slot < now then
      dropped = dropped + math.floor((now - next_slot) / slot_ms)
      next_slot = now
    end
    local wait = next_slot - now
    last = last + 1
    slots[last] = next_slot
    next_slot = next_slot + slot_ms
    return math.floor(wait + 0.5)
  end

  -- How late wrk sends a request after its slot (its event loop behind on shared cores).
  function mark_sent()
    if first > last then return end
    local behind = now_ms() - slots[first]
    slots[first] = nil
    first = first + 1
    if behind >= 5 then late = late + 1 end
    if behind > late_max_ms then late_max_ms = behind end
  end
end

function request()
  if mark_sent then mark_sent() end
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
  local c200, c202, cother, cdropped, clate, clate_max = 0, 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    c200 = c200 + thread:get("s200")
    c202 = c202 + thread:get("s202")
    cother = cother + thread:get("sother")
    cdropped = cdropped + thread:get("dropped")
    clate = clate + thread:get("late")
    clate_max = math.max(clate_max, thread:get("late_max_ms"))
  end
  local e = summary.errors
  io.write(string.format("BENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d errors=%d s200=%d s202=%d sother=%d dropped=%d late=%d late_max_ms=%.1f\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout + e.status, c200, c202, cother, cdropped, clate, clate_max))
end
