"""Realistic b, c, light and gluon jets: Pythia 8 -> FastJet -> fast detector model -> DeepNTuples ROOT file.

Chain (each step documented, with its parameters and their sources, in its module):

1. :mod:`.pythia` -- Pythia 8 (pythia8mc) at sqrt(s) = 13 TeV: ``ttbar`` (b jets from top decays, c and light
   jets from W decays, gluon jets from radiation) or ``qcd`` multijets (``HardQCD:all``, pT-hat > 30 GeV by
   default: light-quark and gluon jets, g -> bb/cc splitting). Multi-parton interactions and hadronisation
   on. The primary vertex is smeared with the CMS beam spot (10 um transverse, 4 cm longitudinal). B and C
   hadrons, K0S, Lambda and every other unstable particle decay with their true lifetimes at displaced
   vertices inside the tracker volume.
2. :mod:`.detector` -- tracker material (beam pipe, pixel and strip layers, supports) with photon
   conversions and nuclear interactions; tracks from hits (resolution, efficiency, multiple scattering, wrong
   hits in dense cores) and a fit whose impact parameters, errors, chi2 and highPurity quality follow from
   them; ECAL/HCAL neutral candidates; optional parametrised pileup; charged-hadron subtraction.
3. FastJet anti-kT R = 0.4 on the reconstructed candidates; jets with pT > 20 GeV and |eta| < 2.5 are kept,
   and matched to generator jets of visible final-state particles (``gen_pt``).
4. :mod:`.truth` -- hadron-based flavour (last B/C hadrons within Delta R < 0.4), gluon splitting, leptonic
   B decays, parton matching for light vs gluon; exactly one flavour flag per jet.
5. :mod:`.vertexing`, :mod:`.features` -- signed 2D/3D impact parameters and significances, jet distance,
   decay length, an inclusive secondary-vertex finder with the CSV vertex selection, the CSV tagging
   variables, and the charged / neutral / vertex lists of the DeepJet inputs.
6. :mod:`.producer` -- blocks of events seeded from (seed, block), parallel worker processes, a progress
   bar, and an atomic write with uproot (tree ``deepntuplizer/tree``, :mod:`deepjet_nb.schema`).

Boosted samples (:mod:`.fatjets`) share steps 1, 2 and 6: ``zprime_tt``, ``wprime_wz``, ``qcd_boosted`` and
``hh_bbbb`` give one entry per anti-kT R = 0.8 jet (DeepAK8 schema: soft drop and N-subjettiness from
:mod:`.substructure`, up to 100 candidates and 7 vertices, resonance/hadron labels of :mod:`.truth`, lepton
identification of :mod:`.leptons`); ``--event-level`` (``ttbar_allhad`` against ``qcd_multijet``) one entry
per preselected event. :mod:`.clustering` holds the jet reconstruction both use.

The numba kernels compile on first use and are cached on disk; :mod:`.warmup` (``python -m
deepjet_nb.samples.warmup``, run by ``make install``) compiles them ahead, and :mod:`.kernel_cache` shows
"compiling kernels (first run only, ~N s)" wherever a first sample still has to.

Example::

    >>> from deepjet_nb.samples import generate
    >>> summary = generate("ttbar", events=200, out="ttbar.root", seed=1)  # doctest: +SKIP
    >>> print(summary)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__all__ = ["generate", "GenerateSummary", "PROCESSES", "register_cli"]

# numba, awkward and Pythia load on first use, so that ``import deepjet_nb.samples`` stays cheap
_LAZY = {"generate": ".producer", "GenerateSummary": ".producer", "PROCESSES": ".pythia"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_cli(subparsers) -> None:
    from .pythia import EVENT_LABEL, FATJET_PROCESSES, PROCESSES

    parser = subparsers.add_parser(
        "generate",
        help="generate a jet sample with Pythia 8 and the fast detector model",
        description="Generate Pythia 8 events at 13 TeV and reconstruct them with the fast CMS-like detector "
        "model. ttbar, qcd and the other non-boosted processes: one entry per AK4 jet (pT > 20 GeV, |eta| < 2.5) "
        f"in the DeepNTuples schema; {', '.join(FATJET_PROCESSES)}: one entry per AK8 jet (pT > --fatjet-pt-min, "
        "|eta| < 2.4) in the DeepAK8 schema; with --event-level (ttbar and QCD processes): one entry per "
        "preselected event in tree 'events' (docs/formats.md §1, §1b, §1c).",
    )
    parser.add_argument("--process", required=True, help=f"physics process: {', '.join(PROCESSES)}")
    parser.add_argument("--events", required=True, type=int, help="number of events to generate")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", required=True, help="output ROOT file")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the blocks on a Dask cluster, e.g. tcp://host:8786 (same file as locally)")
    parser.add_argument("--pthat-min", type=float, default=None,
                        help="minimum pT of the hard process in GeV (default: 30 for qcd, 500 for qcd_boosted, "
                        "150 for qcd_multijet, none otherwise)")
    parser.add_argument("--pileup", type=float, default=0.0,
                        help="mean number of pileup interactions (default 0; CMS Run 2: 20-35)")
    parser.add_argument("--fatjet-pt-min", type=float, default=None, metavar="GEV",
                        help="fat-jet processes: minimum AK8 jet pT in GeV (default 300)")
    parser.add_argument("--event-level", action="store_true",
                        help=f"one entry per preselected event (processes {', '.join(EVENT_LABEL)}; "
                        "label_ttbar or label_QCD from the process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    from .producer import generate

    summary = generate(args.process, args.events, args.out, seed=args.seed, jobs=args.jobs,
                       pthat_min=args.pthat_min, pileup=args.pileup, progress=not args.quiet,
                       scheduler=args.scheduler, event_level=args.event_level, fatjet_pt_min=args.fatjet_pt_min)
    print(summary)
    return 0
