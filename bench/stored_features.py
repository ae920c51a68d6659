"""What reading an entity's stored features costs a predict request, beside
baselines measured in the same run: the same features sent, read by the fast
reader (the common shape) and by the document reader (which a request with
"stored_features" takes). Run by bench/stored.

One `kennel serve --demo` on 127.0.0.1 (a free port, its own temporary
database); one keep-alive connection; sequential requests, so the numbers
are per-request latency including the client. Rounds alternate the three
bodies; the median round's ratios are printed with every round's.
"""

import http.client
import json
import sys
import time

from kennel_server import KennelServer

binary, requests, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
server = KennelServer(binary, "stored", ["--demo"])
headers = server.headers
try:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def post(body):
        c.request("POST", "/v1/models/likes/predict", body, headers)
        r = c.getresponse()
        data = r.read()
        return r.status, data

    # The demo trains its first version at start: wait for it (bounded).
    deadline = time.monotonic() + 120
    while True:
        status, data = post(json.dumps({"features": {}}))
        if status == 200 and not json.loads(data)["fallback"]:
            break
        if time.monotonic() > deadline:
            sys.exit("bench/stored: the demo model was not trained within 120 s")
        time.sleep(0.5)
    c.request("GET", "/v1/streams/posts/facts?entity=post-2000", headers=headers)
    stored_fact = json.loads(c.getresponse().read())["facts"][0]
    features = stored_fact["data"]
    bodies = {
        "sent, fast reader": json.dumps({"entity": "post-2000", "features": features}),
        "sent, document reader": json.dumps({"entity": "post-2000", "explain": False,
                                             "features": features}),
        "stored": json.dumps({"entity": "post-2000", "stored_features": True}),
    }
    answers = {k: json.loads(post(b)[1])["prediction"] for k, b in bodies.items()}
    if len(set(answers.values())) != 1:
        sys.exit("bench/stored: the bodies answered differently: %r" % answers)

    def per_request(body):
        t = time.perf_counter()
        for _ in range(requests):
            status, _ = post(body)
            if status != 200:
                sys.exit("bench/stored: status %d" % status)
        return (time.perf_counter() - t) / requests * 1e6

    results = []
    for _ in range(rounds):
        results.append({k: per_request(b) for k, b in bodies.items()})
    print("%-6s %18s %22s %10s %10s %10s" % ("round", "sent fast us", "sent document us",
                                           "stored us", "x fast", "x document"))
    for i, r in enumerate(results):
        print("%-6d %18.1f %22.1f %10.1f %10.2f %10.2f" % (
            i, r["sent, fast reader"], r["sent, document reader"], r["stored"],
            r["stored"] / r["sent, fast reader"], r["stored"] / r["sent, document reader"]))
    mid = sorted(results, key=lambda r: r["stored"] / r["sent, fast reader"])[len(results) // 2]
    print("median round: stored %.2fx the same features sent (fast reader), %.2fx (document "
          "reader); %d requests a body a round" % (
              mid["stored"] / mid["sent, fast reader"], mid["stored"] / mid["sent, document reader"],
              requests))

    # An entity with 10,000 facts against post-2000 with one: the lookup
    # walks an index from the newest end, so it should not grow with the
    # entity's facts (one query over all of them took 7.8 ms at 10,000).
    facts = [{"stream": "posts", "entity": "bench-busy", "time": "2025-01-01T00:00:00Z",
              "idempotency_key": "busy-%d" % i, "data": dict(features, length=i)}
             for i in range(10000)]
    for i in range(10000):
        facts[i]["time"] = "2025-%02d-%02dT%02d:%02d:00Z" % (1 + i // 2400 % 12, 1 + i // 96 % 25,
                                                             i // 4 % 24, i % 60)
    for i in range(0, len(facts), 2000):
        c.request("POST", "/v1/facts", json.dumps(facts[i:i + 2000]), headers)
        r = c.getresponse()
        body = json.loads(r.read())
        if r.status != 200 or body["rejected"]:
            sys.exit("bench/stored: posting the busy entity's facts: %d %r" % (r.status, body)[:300])
    busy = json.dumps({"entity": "bench-busy", "stored_features": True})
    one, many = [], []
    for _ in range(rounds):
        one.append(per_request(bodies["stored"]))
        many.append(per_request(busy))
    print("entity with 10,000 facts: %s us, one fact: %s us; median ratio %.2f" % (
        ", ".join("%.1f" % v for v in many), ", ".join("%.1f" % v for v in one),
        sorted(m / o for m, o in zip(many, one))[len(one) // 2]))
finally:
    server.stop()
