"""Speed of the sample producer against Pythia alone, side by side in one run (single process each).

Prints one JSON line last: events_per_s, jets_per_s (full producer: Pythia + detector model + jets +
vertexing + ROOT output), pythia_only_events_per_s (the same Pythia settings, events discarded), and
ratio = events_per_s / pythia_only_events_per_s (target >= 0.5). With ``--pileup MU`` the producer overlays
MU minimum-bias interactions per event from the cached library (made during the warm-up if missing; its
one-off cost is reported as library_seconds, not counted in the rate). A boosted process (``--process
zprime_tt``, ``wprime_wz``, ``qcd_boosted``, ``hh_bbbb``) measures the fat-jet producer (one entry per AK8 jet);
``--event-level`` the event-level one (``ttbar_allhad``, ``qcd_multijet``); ``entry`` says what ``jets`` counts.
On a shared machine, ``--repeat N`` alternates the two measurements N times and reports the median of the N
ratios (and each of them in ``ratios``): a load that changes during the run then moves both sides alike.
``cpu_ratio`` is the same ratio from the CPU time of this process (both sides run in it, single-threaded):
what the code costs, whatever else the machine runs.

    python benchmarks/generate.py [--process ttbar|zprime_tt|...] [--events 1000] [--pileup 30] [--event-level]
                                  [--repeat 3]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from deepjet_nb.samples import generate
from deepjet_nb.samples.pileup import ensure_library
from deepjet_nb.samples.producer import BLOCK_EVENTS
from deepjet_nb.samples.pythia import EventGenerator, block_seed


def pythia_only(process: str, events: int, seed: int) -> tuple[float, float]:
    """Events per second of Pythia alone: by the wall clock and by this process's CPU time."""
    generator = EventGenerator(process)
    start, cpu_start = time.perf_counter(), time.process_time()
    done = 0
    block = 0
    while done < events:
        n = min(BLOCK_EVENTS, events - done)
        done += generator.generate_only(n, block_seed(seed, block))
        block += 1
    return done / (time.perf_counter() - start), done / (time.process_time() - cpu_start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", default="ttbar")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--pileup", type=float, default=0.0)
    parser.add_argument("--event-level", action="store_true", help="the event-level ntuple (ttbar/QCD processes)")
    parser.add_argument("--repeat", type=int, default=1, help="alternate both measurements this many times")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.pileup > 0:
        ensure_library()
    library_seconds = time.perf_counter() - start
    rates, references, cpu_ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: numba compilation (cached on disk after the first run) is not part of the rate
        generate(args.process, 20, Path(tmp) / "warmup.root", seed=args.seed, progress=False, pileup=args.pileup,
                 event_level=args.event_level)
        for repeat in range(args.repeat):
            cpu_start = time.process_time()
            summary = generate(args.process, args.events, Path(tmp) / f"bench{repeat}.root", seed=args.seed,
                               progress=False, pileup=args.pileup, event_level=args.event_level)
            cpu_rate = args.events / (time.process_time() - cpu_start)
            rates.append(args.events / summary.seconds)
            reference, cpu_reference = pythia_only(args.process, args.events, args.seed)
            references.append(reference)
            cpu_ratios.append(cpu_rate / cpu_reference)
    ratios = [rate / reference for rate, reference in zip(rates, references)]
    events_per_s = statistics.median(rates)
    result = {
        "process": args.process,
        "events": args.events,
        "pileup": args.pileup,
        "library_seconds": round(library_seconds, 1),
        "entry": summary.entry,
        "jets": summary.jets,
        "events_per_s": round(events_per_s, 1),
        "jets_per_s": round(summary.jets / args.events * events_per_s, 1),
        "pythia_only_events_per_s": round(statistics.median(references), 1),
        "ratio": round(statistics.median(ratios), 3),
        "cpu_ratio": round(statistics.median(cpu_ratios), 3),
    }
    if args.repeat > 1:
        result["ratios"] = [round(ratio, 3) for ratio in ratios]
        result["cpu_ratios"] = [round(ratio, 3) for ratio in cpu_ratios]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
