"""What computing aggregate features costs a predict request, beside a
baseline measured in the same run: the same model with the aggregates' values
sent and no entity, so nothing is computed. Run by bench/aggregates.

One `kennel serve` on 127.0.0.1 (a free port, its own temporary database);
a model over users (x1) and their orders (count over 7 days, sum of amount
over 30 days); entities with 1, 100, 1,000 and 10,000 orders in the
windows. One keep-alive connection, sequential requests (latency including
the client); rounds alternate the bodies; each round's ratios to the
baseline are printed, and the median round's.
"""

import datetime
import http.client
import json
import sys
import time

from kennel_server import KennelServer

binary, requests, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
SIZES = (1, 100, 1000, 10000)
server = KennelServer(binary, "aggregates", ())
headers = server.headers
try:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def call(method, path, body=None):
        c.request(method, path, None if body is None else json.dumps(body), headers)
        r = c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)

    def post_facts(facts):
        for i in range(0, len(facts), 2000):
            status, body = call("POST", "/v1/facts", facts[i:i + 2000])
            if status != 200 or body["rejected"]:
                sys.exit("bench/aggregates: storing facts: %d %s" % (status, str(body)[:300]))

    now = datetime.datetime.now(datetime.timezone.utc)

    def iso(t):
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # 200 entities to train on (a few orders each), then the measured ones.
    facts = []
    for i in range(200):
        e = "u%d" % i
        t = now - datetime.timedelta(days=60, minutes=i)
        facts.append({"stream": "users", "entity": e, "time": iso(t), "data": {"x1": i % 10}})
        for k in range(i % 5):
            facts.append({"stream": "orders", "entity": e,
                          "time": iso(t - datetime.timedelta(hours=k + 1)),
                          "data": {"amount": 10.0 * (k + 1)}})
        facts.append({"stream": "spend", "entity": e,
                      "time": iso(t + datetime.timedelta(hours=1)),
                      "data": {"y": 3 * (i % 5) + i % 10}})
    for n in SIZES:
        e = "busy-%d" % n
        facts += [{"stream": "orders", "entity": e, "idempotency_key": "%s-%d" % (e, k),
                   "time": iso(now - datetime.timedelta(seconds=60 + k * 7 * 86400 / 1.1 / n)),
                   "data": {"amount": 1.0 + k % 7}} for k in range(n)]
    post_facts(facts)
    status, _ = call("PUT", "/v1/models/spending", {
        "task": "regression", "features_from": "users", "label": {"stream": "spend", "field": "y"},
        "algorithm": "linear",
        "features": [{"field": "x1"},
                     {"field": "orders_7d", "aggregate": {"stream": "orders", "op": "count",
                                                          "window_seconds": 7 * 86400}},
                     {"field": "spent_30d", "aggregate": {"stream": "orders", "op": "sum",
                                                          "of": "amount",
                                                          "window_seconds": 30 * 86400}}]})
    if status != 201:
        sys.exit("bench/aggregates: the model was refused: %d" % status)
    status, job = call("POST", "/v1/models/spending/train")
    deadline = time.monotonic() + 120
    while True:
        status, live = call("GET", "/v1/models/spending/aliases/live")
        if status == 200:
            break
        if time.monotonic() > deadline:
            sys.exit("bench/aggregates: no live version within 120 s")
        time.sleep(0.2)

    bodies = {}
    for n in SIZES:
        status, p = call("POST", "/v1/models/spending/predict",
                         {"entity": "busy-%d" % n, "features": {"x1": 3}})
        values = p["aggregates"]["values"]
        if values["orders_7d"] != n:
            sys.exit("bench/aggregates: busy-%d counted %r" % (n, values))
        bodies["%d facts" % n] = json.dumps({"entity": "busy-%d" % n, "features": {"x1": 3}})
        if n == 1:
            # The baseline: the same values sent, no entity: nothing computed.
            sent = json.dumps({"features": dict(values, x1=3)})
            status, q = call("POST", "/v1/models/spending/predict", json.loads(sent))
            if q["prediction"] != p["prediction"]:
                sys.exit("bench/aggregates: sent and computed answered differently")
            bodies = {"sent": sent, **bodies}

    def per_request(body):
        t = time.perf_counter()
        for _ in range(requests):
            c.request("POST", "/v1/models/spending/predict", body, headers)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                sys.exit("bench/aggregates: status %d" % r.status)
        return (time.perf_counter() - t) / requests * 1e6

    results = []
    for _ in range(rounds):
        results.append({k: per_request(b) for k, b in bodies.items()})
    names = list(bodies)
    print("us a request (client included), %d requests a body a round" % requests)
    print("%-6s " % "round" + " ".join("%14s" % k for k in names) + "   x sent: " +
          " ".join("%10s" % k for k in names[1:]))
    for i, r in enumerate(results):
        print("%-6d " % i + " ".join("%14.1f" % r[k] for k in names) + "           " +
              " ".join("%10.2f" % (r[k] / r["sent"]) for k in names[1:]))
    for k in names[1:]:
        ratios = sorted(r[k] / r["sent"] for r in results)
        print("median ratio, %s: %.2fx the values sent" % (k, ratios[len(ratios) // 2]))

    # Other entities' corrections: an entity's are read through an index of
    # their own, so 20,000 corrections of 2,000 other customers' orders
    # should not change what its read costs.
    others = [{"stream": "orders", "entity": "other-%d" % (i % 2000),
               "idempotency_key": "other-%d" % i,
               "time": iso(now - datetime.timedelta(seconds=120 + i)),
               "data": {"amount": 1.0}} for i in range(20000)]
    ids = []
    for i in range(0, len(others), 2000):
        status, body = call("POST", "/v1/facts", others[i:i + 2000])
        if status != 200 or body["rejected"]:
            sys.exit("bench/aggregates: storing facts: %d" % status)
        ids += [item["id"] for item in body["items"]]
    before = [per_request(bodies["1 facts"]) for _ in range(rounds)]
    post_facts([{"stream": "orders", "entity": f["entity"], "time": f["time"],
                 "data": {"amount": 2.0}, "corrects": ids[i]} for i, f in enumerate(others)])
    after = [per_request(bodies["1 facts"]) for _ in range(rounds)]
    print("an entity with 1 order, before and after 20,000 corrections of other entities' "
          "orders: %s us, then %s us; median ratio %.2f" % (
              ", ".join("%.1f" % v for v in before), ", ".join("%.1f" % v for v in after),
              sorted(a / b for a, b in zip(after, before))[len(before) // 2]))
finally:
    server.stop()
