-- POST /v1/orders: one line of quantity 1, for an item picked at random from
-- ITEM_IDS (comma-separated), so orders spread over many stock rows.
local ids = {}
for id in string.gmatch(os.getenv("ITEM_IDS") or "", "[^,]+") do
  ids[#ids + 1] = id
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format(nil, nil, nil, '{"lines":[{"item_id":"' .. id .. '","quantity":1}]}')
end
