"""The sliding-window counter: the rate-limit decision, in Lua for Redis and in Python.

Per key we keep the request count of the current fixed window (`c`, window number `i`) and of
the previous one (`p`). At `e` microseconds into the current window of length `w`, the requests
"in the last w" are estimated as `p * (w - e) / w + c`; a request is admitted iff that estimate
plus itself stays within the quota `q`.

Documented error (the price of O(1) memory per caller, instead of one entry per request):

* The estimate assumes the previous window's requests were spread evenly over it. Cloudflare,
  who run this algorithm at scale, measured 0.003 % of 400 million requests wrongly allowed or
  refused. The worst case is bounded: never more than q requests in one fixed window
  (the estimate is at least `c`), hence fewer than 2q in any sliding interval of length w; and
  a caller whose previous window was front-loaded may be refused early.
* Back-to-back requests on a fresh key: 1..q pass, q + 1 is refused. Concurrent callers are
  serialised by Redis (the script is atomic), so no over-admission whatever the number of
  processes; a burst admits exactly q unless it crosses a window boundary and goes on for more
  than w / q seconds after it (then the previous window's weight has shrunk by a request).
* Memory: one small hash per active key, expiring when it stops mattering (end of the next
  window, at most 2w). Time: the script reads the Redis server's TIME, so instances agree.

Reported numbers: `remaining` = what the quota still allows now; `reset` = time to the end of the
current window; `retry` (refusals) = the exact wait until one more request fits.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import math
from typing import NamedTuple

MICROS = 1_000_000

# KEYS[k]: one hash per key, fields i (window number), c (its count), p (previous count).
# ARGV[2k-1], ARGV[2k]: quota and window (microseconds) of KEYS[k]. All keys must admit for any
# to be charged (a refusal charges nothing). Then, for KEYS[1] only (`lucid.ratelimit.lease`):
# `extra` slots to reserve beyond this request, granted only as far as 1/`share` of what is left;
# `back` slots of an earlier reservation of window `back_window` that were never spent, given
# back first. Reply: {admitted, per key: admitted, remaining, reset_us, retry_us; granted,
# window number of KEYS[1]}.
LUA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n = #KEYS
local extra = tonumber(ARGV[2 * n + 1]) or 0
local share = tonumber(ARGV[2 * n + 2]) or 1
local back = tonumber(ARGV[2 * n + 3]) or 0
local back_window = tonumber(ARGV[2 * n + 4]) or -1
local reply = {1}
local charge = {}
local granted, first_index = 0, 0
for k, key in ipairs(KEYS) do
  local quota = tonumber(ARGV[2 * k - 1])
  local window = tonumber(ARGV[2 * k])
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local state = redis.call('HMGET', key, 'i', 'c', 'p')
  local i, c, p = tonumber(state[1]), tonumber(state[2]) or 0, tonumber(state[3]) or 0
  if i ~= index then
    if i == index - 1 then p = c else p = 0 end
    c = 0
  end
  if k == 1 then
    first_index = index
    if back > 0 and back_window == index then c = math.max(0, c - back) end
    if back > 0 and back_window == index - 1 then p = math.max(0, p - back) end
  end
  local previous = p * (window - elapsed) / window
  if previous + c + 1 <= quota then
    local remaining = math.floor(quota - previous - c - 1)
    local take = 0
    if k == 1 and extra > 0 then take = math.min(extra, math.floor(remaining / share)) end
    if k == 1 then granted = take end
    charge[#charge + 1] = {key, index, c + 1 + take, p, 2 * window - elapsed}
    for _, v in ipairs({1, remaining, window - elapsed, 0}) do reply[#reply + 1] = v end
  else
    reply[1] = 0
    if k == 1 and back > 0 then
      redis.call('HSET', key, 'i', index, 'c', c, 'p', p)
      redis.call('PEXPIRE', key, math.ceil((2 * window - elapsed) / 1000))
    end
    local room = quota - 1 - c
    local retry
    if room >= 0 and p > 0 then
      retry = math.ceil(window * (p - room) / p) - elapsed
    else
      retry = window - elapsed + math.max(0, math.ceil(window * (c - quota + 1) / c))
    end
    for _, v in ipairs({0, 0, window - elapsed, retry}) do reply[#reply + 1] = v end
  end
end
if reply[1] == 1 then
  for _, s in ipairs(charge) do
    redis.call('HSET', s[1], 'i', s[2], 'c', s[3], 'p', s[4])
    redis.call('PEXPIRE', s[1], math.ceil(s[5] / 1000))
  end
else
  granted = 0
end
reply[#reply + 1] = granted
reply[#reply + 1] = first_index
return reply
"""


class Verdict(NamedTuple):
    """One key's outcome; times in microseconds."""

    admitted: bool
    remaining: int
    reset_us: int
    retry_us: int


class Counts(NamedTuple):
    """A key's state: window number, its count, the previous window's count."""

    number: int
    current: int
    previous: int


def decide(state: Counts | None, now: int, quota: int, window: int) -> tuple[Verdict, Counts]:
    """The verdict for one request at `now` (µs) and the state to store if it is charged.

    The same arithmetic as LUA_SCRIPT, for the in-memory limiter.
    """
    index, elapsed = divmod(now, window)
    i, c, p = state or (None, 0, 0)
    if i != index:
        c, p = 0, (c if i == index - 1 else 0)
    previous = p * (window - elapsed) / window
    if previous + c + 1 <= quota:
        remaining = math.floor(quota - previous - c - 1)
        return Verdict(True, remaining, window - elapsed, 0), Counts(index, c + 1, p)
    room = quota - 1 - c
    if room >= 0 and p > 0:
        retry = math.ceil(window * (p - room) / p) - elapsed
    else:
        retry = window - elapsed + max(0, -(-window * (c - quota + 1) // c))
    return Verdict(False, 0, window - elapsed, retry), Counts(index, c, p)


def expires_at(state: Counts, window: int) -> int:
    """When a state stops mattering (µs): the end of the window after its own."""
    return (state.number + 2) * window
