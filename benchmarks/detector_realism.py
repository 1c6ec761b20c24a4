"""Realism checks of the detector model against published CMS figures (docs/reference.md §5, realism table).

Two parts, one JSON line each:

1. from a generated ttbar ntuple (``--file``, or generated with ``--events``): track counting (second-highest
   3D IP significance of the selected tracks, -10 below two) b efficiency at 1 % udsg mistag with a bootstrap
   error, and the fraction of b, c and udsg jets with >= 1 secondary vertex (binomial errors);
2. from the detector kernels on fresh Pythia events, with generator truth (validation only: the truth columns
   never reach an input branch): the fitted sigma(d0) and the spread of d0 of prompt tracks at 1, 10 and 100 GeV
   (|eta| < 0.5), the AUC of the track chi2/ndf for tracks with a mis-measured d0 (|pull| > 3) or a wrong hit,
   and the rates of conversion and nuclear-interaction vertices per jet and flavour (a vertex counts as one
   when most of its tracks come from such an interaction).

    python benchmarks/detector_realism.py --events 3000 [--truth-events 500] [--seed 5]

The file part reads any ntuple of the DeepNTuples schema; the truth part needs this checkout's detector.
"""

import argparse
import json
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot


def nth_highest(jagged, n, default=-10.0):
    ordered = ak.sort(jagged, ascending=False)
    return ak.to_numpy(ak.fill_none(ak.pad_none(ordered, n, clip=True)[:, n - 1], default))


def efficiency_at_mistag(score, is_b, is_light, mistag=0.01):
    cut = np.quantile(score[is_light], 1.0 - mistag)
    return float(np.mean(score[is_b] > cut))


def file_metrics(path, seed=1, n_boot=200):
    from deepjet_nb import schema
    from deepjet_nb.flavours import flavour_masks

    arrays = uproot.open(path)[schema.TREE].arrays()
    masks = flavour_masks(arrays)
    score = nth_highest(arrays.TagVarCSVTrk_trackSip3dSig, 2)
    eff = efficiency_at_mistag(score, masks["b"], masks["udsg"])
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(score), len(score))
        boot.append(efficiency_at_mistag(score[idx], masks["b"][idx], masks["udsg"][idx]))
    has_sv = ak.to_numpy(arrays.nsv) > 0
    sv = {}
    for flavour, m in masks.items():
        f = float(has_sv[m].mean())
        sv[flavour] = [round(f, 4), round(float(np.sqrt(f * (1 - f) / m.sum())), 4)]
    return {"jets": len(score), "n_b": int(masks["b"].sum()), "n_udsg": int(masks["udsg"].sum()),
            "track_counting_eff_b_at_1pct": round(eff, 4), "bootstrap_error": round(float(np.std(boot)), 4),
            "sv_fraction": sv}


def auc(score, label):
    """Area under the ROC curve of ``score`` for ``label`` (Mann-Whitney, ties counted half)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos = label.sum()
    n_neg = len(label) - n_pos
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def truth_metrics(events, seed):
    from deepjet_nb.samples import detector as C, features, truth
    from deepjet_nb.samples.pileup import Library
    from deepjet_nb.samples.producer import reconstruct_jets
    from deepjet_nb.samples.pythia import EventGenerator, block_seed

    generator = EventGenerator("ttbar")
    d0_rows = []
    chi2_rows = []
    vertex_counts = {f: [0, 0, 0] for f in ("b", "c", "udsg")}  # jets, conversion SVs, nuclear SVs
    sv_counts = {f: 0 for f in ("b", "c", "udsg")}
    composition = {}  # udsg-jet vertices by the source of most of their tracks
    for block in range(-(-events // 100)):
        batch = generator.generate(min(100, events - 100 * block), block_seed(seed, block))
        C.seed_numba(block_seed(seed, block))
        lib = Library.empty()
        cand, cand_offsets, pv_true, pv_reco, _ = C.simulate_candidates(
            batch.offsets, batch.status, batch.pid, batch.charge, batch.px, batch.py, batch.pz, batch.e, batch.vx,
            batch.vy, batch.vz, 0.0, lib.offsets, lib.pid, lib.charge, lib.p4, lib.vertex, lib.vertex_tracks)
        event_of_cand = np.repeat(np.arange(batch.n_events), np.diff(cand_offsets))
        trk = cand[C.C_KIND] == C.TRACK
        gen = cand[C.C_GEN].astype(np.int64)
        # prompt generator tracks: produced at the primary vertex
        base = batch.offsets[event_of_cand]
        gi = np.clip(base + gen, 0, len(batch.vx) - 1)
        prompt = trk & (gen > 0) & (np.hypot(batch.vx[gi] - pv_true[event_of_cand, 0],
                                             batch.vy[gi] - pv_true[event_of_cand, 1]) < 1e-9)
        prompt &= cand[C.C_ORIGIN] == C.ORIGIN_GENERATOR
        pt = np.hypot(cand[C.C_PX], cand[C.C_PY])
        eta = np.arcsinh(cand[C.C_PZ] / np.maximum(pt, 1e-9))
        # signed transverse distance of the measured line from the true PV
        dx = cand[C.C_X0] - pv_true[event_of_cand, 0]
        dy = cand[C.C_Y0] - pv_true[event_of_cand, 1]
        txy = np.hypot(cand[C.C_TX], cand[C.C_TY])
        d0 = (dx * cand[C.C_TY] - dy * cand[C.C_TX]) / np.maximum(txy, 1e-12)
        sel = prompt & (np.abs(eta) < 0.5)
        d0_rows.append(np.stack([pt[sel], d0[sel], cand[C.C_SD0, sel]], axis=1))
        label = (np.abs(cand[C.C_D0_PULL, trk]) > 3) | (cand[C.C_NWRONG, trk] > 0)
        chi2_rows.append(np.stack([cand[C.C_CHI2, trk], label], axis=1))

        # jets and vertices as in the producer, with the origin of the vertex tracks
        p4, jeta, jphi, jet_event, jet_offsets, const_offsets, const_index = reconstruct_jets(
            cand, cand_offsets, pv_reco, batch.n_events)
        _, hflav, _, _, _ = truth.label_jets(
            batch.offsets, batch.pid, batch.status, batch.mother1, batch.mother2, batch.daughter1,
            batch.daughter2, batch.px, batch.py, batch.pz, jet_offsets, jeta, jphi)
        pv_var = C.PV_SIGMA_MM ** 2
        for j in range(len(jeta)):
            flavour = {5: "b", 4: "c"}.get(int(hflav[j]), "udsg")
            ev = jet_event[j]
            jp = p4[j, :3] / np.linalg.norm(p4[j, :3])
            trk_idx, _ = features._split_constituents(cand, cand_offsets[ev], const_index, const_offsets[j],
                                                      const_offsets[j + 1])
            vertex_counts[flavour][0] += 1
            if len(trk_idx) < 2:
                continue
            points, dirs, weights, p4s, charges, _, _, ip3, ip3s, _, _, _ = features._track_table(
                cand, trk_idx, pv_reco[ev], jp, pv_var)
            assign, vpos, _, _ = features.find_vertices(points, dirs, weights, p4s, charges, np.abs(ip3),
                                                        np.abs(ip3s), pv_reco[ev], pv_var, jeta[j], jphi[j])
            sv_counts[flavour] += len(vpos) > 0
            origin = cand[C.C_ORIGIN, trk_idx]
            source = _track_sources(batch, cand[C.C_GEN, trk_idx].astype(np.int64), origin, pv_true[ev], C)
            for v in range(len(vpos)):
                o = origin[assign == v]
                if np.mean(o == 1) > 0.5:
                    vertex_counts[flavour][1] += 1
                elif np.mean(o == 2) > 0.5:
                    vertex_counts[flavour][2] += 1
                if flavour == "udsg":
                    values, counts = np.unique(source[assign == v], return_counts=True)
                    name = values[np.argmax(counts)] if counts.max() > 0.5 * counts.sum() else "mixed"
                    composition[name] = composition.get(name, 0) + 1
    d0_rows = np.concatenate(d0_rows)
    resolution = {}
    for lo, hi, name in ((0.9, 1.2, "1"), (8.0, 12.0, "10"), (60.0, 160.0, "100")):
        m = (d0_rows[:, 0] > lo) & (d0_rows[:, 0] < hi)
        if m.sum() < 5:
            continue
        d = d0_rows[m, 1]
        core = d[np.abs(d - np.median(d)) < 5 * 1.4826 * np.median(np.abs(d - np.median(d)))]
        resolution[name + "GeV"] = {"n": int(m.sum()), "median_fit_sigma_um": round(1000 * np.median(d0_rows[m, 2]), 1),
                                    "core_rms_um": round(1000 * core.std(), 1),
                                    "frac_beyond_3_fit_sigma": round(float(np.mean(np.abs(d) > 3 * d0_rows[m, 2])), 4)}
    chi2_rows = np.concatenate(chi2_rows)
    lab = chi2_rows[:, 1] > 0
    out = {"sigma_d0": resolution,
           "chi2_auc_mismeasured": round(auc(chi2_rows[:, 0], lab), 3) if 0 < lab.sum() < len(lab) else None,
           "mismeasured_fraction": round(float(lab.mean()), 4),
           "sv_fraction_kernel": {f: round(sv_counts[f] / max(vertex_counts[f][0], 1), 4) for f in sv_counts}}
    out["material_vertices_per_jet"] = {
        f: {"jets": c[0], "conversion": round(c[1] / max(c[0], 1), 5), "nuclear": round(c[2] / max(c[0], 1), 5)}
        for f, c in vertex_counts.items()}
    out["udsg_sv_sources"] = composition
    return out


def _track_sources(batch, gen, origin, pv, C):
    """Source of each track (validation only): material, V0 (K0S / Lambda daughter), heavy-flavour decay,
    other displaced decay, or prompt."""
    ev_start = None
    out = np.empty(len(gen), dtype=object)
    for a in range(len(gen)):
        if origin[a] == 1:
            out[a] = "conversion"
            continue
        if origin[a] == 2:
            out[a] = "nuclear"
            continue
        out[a] = "unknown"
        if gen[a] <= 0:
            continue
        ev_start = _event_start(batch, pv)
        i = ev_start + gen[a]
        if np.hypot(batch.vx[i] - pv[0], batch.vy[i] - pv[1]) < 1e-9:
            out[a] = "prompt"
            continue
        mother = ev_start + batch.mother1[i]
        code = abs(batch.pid[mother])
        if code in (310, 3122, 130):
            out[a] = "V0"
        elif (code // 100) % 10 in (4, 5) or (code // 1000) % 10 in (4, 5):
            out[a] = "heavy flavour"
        else:
            out[a] = "other decay"
    return out


def _event_start(batch, pv):
    # the event whose hard-interaction vertex is pv
    starts = batch.offsets[:-1]
    return int(starts[np.argmin(np.abs(batch.vz[starts + 1] - pv[2]))])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="an existing ttbar ntuple (else one is generated)")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--truth-events", type=int, default=500)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    import deepjet_nb

    print(json.dumps({"code": str(Path(deepjet_nb.__file__).parent)}))
    if args.file:
        print(json.dumps(file_metrics(args.file)))
    else:
        from deepjet_nb.samples import generate

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ttbar.root"
            generate("ttbar", args.events, path, seed=args.seed, jobs=1, progress=False)
            print(json.dumps(file_metrics(path)))
    if args.truth_events > 0:
        print(json.dumps(truth_metrics(args.truth_events, args.seed + 1000)))


if __name__ == "__main__":
    main()
