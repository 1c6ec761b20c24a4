"""Speed of the sample producer against Pythia alone, side by side in one run (single process each).

Prints one JSON line last: events_per_s, jets_per_s (full producer: Pythia + detector model + jets +
vertexing + ROOT output), pythia_only_events_per_s (the same Pythia settings, events discarded), and
ratio = events_per_s / pythia_only_events_per_s (target >= 0.5). With ``--pileup MU`` the producer overlays
MU minimum-bias interactions per event from the cached library (made during the warm-up if missing; its
one-off cost is reported as library_seconds, not counted in the rate). A boosted process (``--process
zprime_tt``, ``wprime_wz``, ``qcd_boosted``, ``hh_bbbb``) measures the fat-jet producer (one entry per AK8 jet);
``--event-level`` the event-level one (``ttbar_allhad``, ``qcd_multijet``); ``entry`` says what ``jets`` counts.

    python benchmarks/generate.py [--process ttbar|zprime_tt|...] [--events 1000] [--pileup 30] [--event-level]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from deepjet_nb.samples import generate
from deepjet_nb.samples.pileup import ensure_library
from deepjet_nb.samples.producer import BLOCK_EVENTS
from deepjet_nb.samples.pythia import EventGenerator, block_seed


def pythia_only(process: str, events: int, seed: int) -> float:
    generator = EventGenerator(process)
    start = time.perf_counter()
    done = 0
    block = 0
    while done < events:
        n = min(BLOCK_EVENTS, events - done)
        done += generator.generate_only(n, block_seed(seed, block))
        block += 1
    return done / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", default="ttbar")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--pileup", type=float, default=0.0)
    parser.add_argument("--event-level", action="store_true", help="the event-level ntuple (ttbar/QCD processes)")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.pileup > 0:
        ensure_library()
    library_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: numba compilation (cached on disk after the first run) is not part of the rate
        generate(args.process, 20, Path(tmp) / "warmup.root", seed=args.seed, progress=False, pileup=args.pileup,
                 event_level=args.event_level)
        summary = generate(args.process, args.events, Path(tmp) / "bench.root", seed=args.seed, progress=False,
                           pileup=args.pileup, event_level=args.event_level)
    reference = pythia_only(args.process, args.events, args.seed)
    events_per_s = args.events / summary.seconds
    result = {
        "process": args.process,
        "events": args.events,
        "pileup": args.pileup,
        "library_seconds": round(library_seconds, 1),
        "entry": summary.entry,
        "jets": summary.jets,
        "events_per_s": round(events_per_s, 1),
        "jets_per_s": round(summary.jets / summary.seconds, 1),
        "pythia_only_events_per_s": round(reference, 1),
        "ratio": round(events_per_s / reference, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
