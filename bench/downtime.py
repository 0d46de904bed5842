"""Measure the downtime and wall time of the application rollback on the drill stack.

Three ways of moving the drill backend from v1.0.0 to v0.9.5 are compared, each run
several times from the same starting state:

- ``playbook``: ``ansible-playbook playbooks/rollback_app.yml -e version=v0.9.5``
  (capture, prepare, switch, verify and log);
- ``plan``: the rollback plan's manual sequence, ``docker compose down``, edit the
  tag, ``docker compose up -d``, then wait for the health endpoint;
- ``recreate``: edit the tag and ``docker compose up -d``, which recreates only the
  changed service, then wait for the health endpoint.

A poller requests ``/api/health`` every 50 ms. The downtime of a run is the longest
window between two answers with status 200; the wall time runs from the start of
the command until the first 200 from v0.9.5 (the playbook verifies that itself, so
its wall time is the command's). Only 127.0.0.1 is contacted.

Usage: python bench/downtime.py [--runs 3] [--output bench/results]
"""

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEALTH_URL = "http://127.0.0.1:18080/api/health"
POLL_INTERVAL = 0.05
DRILL_HOME = os.environ.get("TRUEBOND_DRILL_HOME", "/var/tmp/truebond-drill")
PROJECT = os.path.join(DRILL_HOME, "truebond")
COMPOSE_FILE = os.path.join(PROJECT, "docker-compose.production.yml")
COMPOSE = ["docker", "compose", "--project-directory", PROJECT, "-f", COMPOSE_FILE]


class Poller(threading.Thread):
    """Request the health endpoint every POLL_INTERVAL seconds and keep every response."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []  # (monotonic time, status or None, version or None)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            status, version = None, None
            try:
                with urllib.request.urlopen(HEALTH_URL, timeout=0.5) as response:
                    status = response.status
                    version = json.loads(response.read()).get("version")
            except urllib.error.HTTPError as error:
                status = error.code
            except (OSError, ValueError):
                pass
            self.samples.append((started, status, version))
            self.stopping.wait(max(0.0, POLL_INTERVAL - (time.monotonic() - started)))

    def stop(self):
        self.stopping.set()
        self.join()

    def longest_gap(self, start, end):
        """Return the longest time between two 200 responses within [start, end]."""
        ok_times = [
            t for t, status, _ in self.samples if status == 200 and start <= t <= end
        ]
        if len(ok_times) < 2:
            return end - start
        return max(later - earlier for earlier, later in itertools.pairwise(ok_times))

    def first_ok(self, version, after):
        for t, status, seen in self.samples:
            if t >= after and status == 200 and seen == version:
                return t
        return None


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def reset_stack():
    run(["bash", os.path.join(REPO, "tests/stack/stack.sh"), "set", "v1.0.0"])


def set_tag(tag):
    with open(COMPOSE_FILE, encoding="utf-8") as handle:
        text = handle.read()
    text = re.sub(r"(image: truebond-backend:)\S+", r"\g<1>" + tag, text)
    with open(COMPOSE_FILE, "w", encoding="utf-8") as handle:
        handle.write(text)


def wait_for(poller, version, after, deadline=60):
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        seen = poller.first_ok(version, after)
        if seen is not None:
            return seen
        time.sleep(0.02)
    raise RuntimeError(f"{version} did not return 200 within {deadline} s")


def way_playbook(poller):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    run(
        ["ansible-playbook", "playbooks/rollback_app.yml", "-e", "version=v0.9.5"],
        cwd=REPO,
        env=env,
    )
    return time.monotonic()


def way_plan(poller):
    run(COMPOSE + ["down"])
    set_tag("v0.9.5")
    start_up = time.monotonic()
    run(COMPOSE + ["up", "-d", "--pull", "never"])
    return wait_for(poller, "v0.9.5", start_up)


def way_recreate(poller):
    set_tag("v0.9.5")
    start_up = time.monotonic()
    run(COMPOSE + ["up", "-d", "--pull", "never"])
    return wait_for(poller, "v0.9.5", start_up)


WAYS = {"playbook": way_playbook, "plan": way_plan, "recreate": way_recreate}


def measure(name, runs):
    figures = []
    for _ in range(runs):
        reset_stack()
        time.sleep(1.0)
        poller = Poller()
        poller.start()
        time.sleep(0.5)
        start = time.monotonic()
        done = WAYS[name](poller)
        time.sleep(0.5)
        poller.stop()
        figures.append(
            {
                "wall_seconds": round(done - start, 3),
                "downtime_seconds": round(poller.longest_gap(start, done + 0.5), 3),
            }
        )
    return {
        "runs": figures,
        "median_wall_seconds": statistics.median(f["wall_seconds"] for f in figures),
        "median_downtime_seconds": statistics.median(
            f["downtime_seconds"] for f in figures
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per way (default 3)")
    parser.add_argument(
        "--output",
        default=os.path.join(REPO, "bench", "results"),
        help="folder for the JSON results (default bench/results)",
    )
    parser.add_argument(
        "--ways", default="playbook,plan,recreate", help="comma-separated"
    )
    args = parser.parse_args()

    results = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "poll_interval_seconds": POLL_INTERVAL,
        "cpu_count": os.cpu_count(),
        "ways": {},
    }
    for name in args.ways.split(","):
        results["ways"][name] = measure(name, args.runs)
        way = results["ways"][name]
        print(
            f"{name:<9} median wall {way['median_wall_seconds']:.2f} s, "
            f"median downtime {way['median_downtime_seconds']:.2f} s (runs: {way['runs']})",
            flush=True,
        )
    reset_stack()
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(
        args.output, "downtime-{}.json".format(results["measured_at"].replace(":", ""))
    )
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    print("results written to", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
