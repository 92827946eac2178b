-- POST /v1/items with a fixed, valid body (also used for POST /hello).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Bench item","description":"created under load","price_minor":1999,"currency":"EUR","stock":1000}'
