-- The item calls of POST /v1/orders after its GET: alternately
-- PUT /v1/reservations/{key} (one unit of an item picked at random from
-- ITEM_IDS) under a new key, and POST /v1/reservations/{key}/confirm for the
-- key reserved LAG reserves earlier (long done, whichever connection sent
-- it). So every request is one of the two and their mean cost is one call's.
local ids = {}
for id in string.gmatch(os.getenv("ITEM_IDS") or "", "[^,]+") do
  ids[#ids + 1] = id
end
local LAG = 1000
local prefix = "bench-" .. os.time() .. "-" .. math.random(1000000)
local reserved = 0
local confirmed = 0
local turn = 0
request = function()
  turn = turn + 1
  if turn % 2 == 0 and confirmed < reserved - LAG then
    confirmed = confirmed + 1
    return wrk.format("POST", "/v1/reservations/" .. prefix .. "-" .. confirmed .. "/confirm")
  end
  reserved = reserved + 1
  local body = '{"item_id":"' .. ids[math.random(#ids)] .. '","quantity":1}'
  return wrk.format("PUT", "/v1/reservations/" .. prefix .. "-" .. reserved,
    { ["Content-Type"] = "application/json" }, body)
end
