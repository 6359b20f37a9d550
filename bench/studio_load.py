#!/usr/bin/env python3
"""A bounded load test of a running `mmgen serve` (Python standard library only).

1. Cached results: one OpenAI-style image request is made once (the pipeline's cache
   then holds it), then `--cached` more of the same with `--concurrency` clients.
2. Generation jobs: `--jobs` distinct requests (other seeds, so nothing is cached) are
   submitted at once to POST /v1/jobs; each is followed until it ends.

Prints throughput, p50 / p99 latency, status counts and errors as JSON.

    mmgen serve --addr 127.0.0.1:8080 --data /tmp/studio &
    python3 bench/studio_load.py --url http://127.0.0.1:8080
"""

import argparse
import http.client
import json
import statistics
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def call(base, method, path, body=None):
    """One request on its own connection: (status, parsed JSON or None, seconds)."""
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    data = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    start = time.perf_counter()
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    seconds = time.perf_counter() - start
    conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return response.status, parsed, seconds


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def summary(latencies, statuses, wall):
    counts = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return {
        "requests": len(statuses),
        "wall_seconds": round(wall, 3),
        "throughput_per_s": round(len(statuses) / wall, 1) if wall > 0 else None,
        "p50_ms": round(1000 * percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 99), 1) if latencies else None,
        "mean_ms": round(1000 * statistics.mean(latencies), 1) if latencies else None,
        "statuses": counts,
    }


def cached(base, n, concurrency, prompt):
    body = {"prompt": prompt, "seed": 0}
    status, _, first = call(base, "POST", "/v1/images/generations", body)
    if status != 200:
        raise SystemExit(f"the first image request answered {status}")
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: call(base, "POST", "/v1/images/generations", body), range(n)))
    wall = time.perf_counter() - start
    out = summary([r[2] for r in results], [r[0] for r in results], wall)
    out["first_request_ms"] = round(1000 * first, 1)
    out["errors"] = sum(1 for r in results if r[0] != 200)
    return out


def jobs(base, n, prompt, seed0):
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        submitted = list(
            pool.map(
                lambda i: call(base, "POST", "/v1/jobs", {"prompt": prompt, "seed": seed0 + i, "modalities": ["image"]}),
                range(n),
            )
        )
    accepted = {r[1]["id"]: time.perf_counter() for r in submitted if r[0] == 202}
    ended = {}
    states = {}
    while len(ended) < len(accepted):
        for job_id in accepted:
            if job_id in ended:
                continue
            status, view, _ = call(base, "GET", f"/v1/jobs/{job_id}")
            if status == 200 and view["state"] in ("completed", "failed", "cancelled"):
                ended[job_id] = time.perf_counter() - start
                states[view["state"]] = states.get(view["state"], 0) + 1
        time.sleep(0.05)
    wall = time.perf_counter() - start
    out = summary(list(ended.values()), [r[0] for r in submitted], wall)
    out["submit_p99_ms"] = round(1000 * percentile([r[2] for r in submitted], 99), 1)
    out["end_states"] = states
    out["jobs_per_s"] = round(len(ended) / wall, 2)
    out["errors"] = sum(1 for r in submitted if r[0] not in (202, 429)) + states.get("failed", 0)
    out["latency_is"] = "submit to end, per job"
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--cached", type=int, default=1000, help="requests to a cached result")
    parser.add_argument("--concurrency", type=int, default=16, help="clients of the cached phase")
    parser.add_argument("--jobs", type=int, default=50, help="concurrent generation jobs")
    parser.add_argument("--prompt", default="two red circles on a grassy field")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first generation job")
    args = parser.parse_args()
    status, health, _ = call(args.url, "GET", "/healthz")
    if status != 200:
        raise SystemExit(f"{args.url}/healthz answered {status}")
    report = {"server": health}
    if args.cached > 0:
        report["cached"] = cached(args.url, args.cached, args.concurrency, args.prompt)
    if args.jobs > 0:
        report["jobs"] = jobs(args.url, args.jobs, args.prompt, args.seed)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
