-- wrk script for GET requests (/healthz): prints one line,
-- BENCH rps=... p50_ms=... p99_ms=... max_ms=... requests=... errors=...
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout + e.status))
end
