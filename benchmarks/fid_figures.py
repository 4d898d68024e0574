"""Real figures with provenance: FID/KID of trained generators on Fashion-MNIST against its
test split, sanity checks of the metric (train vs test, noise vs test), and mode figures for the
2-D mixtures under three losses. Results accumulate in benchmarks/results/metrics.json (one
entry per section, re-running a section replaces it) and are rendered to metrics.md.

  python benchmarks/fid_figures.py --sections sanity stylegan2 dcgan toys [--num 2000] [--threads 2]

`stylegan2` evaluates the newest runs/*stylegan2-cond-fashion-mnist* run, `dcgan` the newest
runs/*dcgan-fashion-mnist* run (or pass --stylegan2-run / --dcgan-run).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer import load_generator  # noqa: E402
from trainer.files import atomic_write  # noqa: E402
from trainer.config import DataConfig  # noqa: E402
from trainer.data.datasets import Dataset, load_dataset  # noqa: E402
from trainer.metrics import compute_metrics, distances  # noqa: E402
from trainer.metrics.compute import feature_network  # noqa: E402
from trainer.metrics.features import cached_real_features, dataset_source, extract_features  # noqa: E402
from trainer.metrics.inception import RESIZE_FILTER  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def newest_run(pattern: str) -> Path | None:
    runs = sorted((ROOT / "runs").glob(pattern), key=lambda p: p.stat().st_mtime)
    runs = [r for r in runs if list((r / "checkpoints").glob("*.safetensors"))]
    return runs[-1] if runs else None


def summarise(results) -> list[dict]:
    return [r.to_dict() for r in results]


def section_generator(run: Path, num: int, device, metrics: str) -> dict:
    G = load_generator(run, device=device)
    info = G.checkpoint_info
    t0 = time.time()
    results = compute_metrics(G, DataConfig(source="fashion-mnist", split="test"), metrics, num_samples=num,
                              device=device, batch=50)
    return {"run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
            "checkpoint": Path(info["path"]).name, "kimg": info["kimg"], "step": info["step"],
            "arch": info["config"]["arch"], "seconds": round(time.time() - t0, 1), "results": summarise(results)}


def section_sanity(num: int, device) -> dict:
    """Fashion-MNIST train images vs test images (same distribution: FID small, KID ~ 0) and
    uniform noise vs test images (FID large), at 32x32 like the generators."""
    net, info = feature_network(None, device)
    test = load_dataset(DataConfig(source="fashion-mnist", split="test", resolution=32, channels=1))
    train = load_dataset(DataConfig(source="fashion-mnist", split="train", resolution=32, channels=1))
    key = {"dataset": test.name, "source": "fashion-mnist", "split": "test", "resolution": 32, "channels": 1,
           "dataset_size": len(test), "num_images": num, "subset_seed": 0, "features": info.name,
           "features_sha256": info.sha256}
    real, mu_r, sigma_r, _ = cached_real_features(
        key, lambda: extract_features(net, dataset_source(test, num, 0), 50, device, desc="test features"))
    train_f = extract_features(net, dataset_source(train, num, seed=1), 50, device, desc="train features")
    gen = torch.Generator().manual_seed(0)
    noise = Dataset("noise", torch.randint(0, 256, (num, 1, 32, 32), generator=gen, dtype=torch.uint8),
                    torch.zeros(num, dtype=torch.long), [])
    noise_f = extract_features(net, dataset_source(noise, num), 50, device, desc="noise features")
    out = {}
    for name, feats in (("train split vs test split", train_f), ("uniform noise vs test split", noise_f)):
        fid, method = distances.frechet_distance(mu_r, sigma_r, *distances.feature_stats(feats))
        kid = distances.kernel_inception_distance(real, feats, subset_size=min(1000, num), disjoint=True)
        out[name] = {"fid": fid, "kid": kid.value, "kid_ci95": kid.ci95, "num_each_side": num, "sqrtm": method}
    return {"comparisons": out, "provenance": dict(info.provenance(), resize_filter=RESIZE_FILTER,
                                                  dataset="fashion-mnist", resolution=32)}


def section_toys(kimg: float, samples: int) -> dict:
    from toy_modes import toy_mode_rows   # benchmarks/toy_modes.py: the same runs, printed as a table there
    rows = []
    for row in toy_mode_rows(kimg, samples):
        row.pop("run_dir")
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"rows": rows, "definition": "high quality: within 3 sigma of a mode centre; a mode is captured "
                                        "with at least 2% of its uniform share of the samples; reverse KL of "
                                        "the high-quality samples' mode histogram against uniform"}


# ---------------------------------------------------------------------------------------------

def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if not np.isfinite(v):
            return str(v)
        return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def render(all_sections: dict) -> str:
    lines = ["# Metric figures (written by benchmarks/fid_figures.py)", ""]
    env = all_sections.get("_env", {})
    if env:
        lines += [f"Machine: {env.get('machine')}; torch {env.get('torch')}; {env.get('threads')} CPU threads; "
                  f"device {env.get('device')}.", ""]
    if "sanity" in all_sections:
        s = all_sections["sanity"]
        p = s["provenance"]
        lines += ["## Sanity: the metric on real data", "",
                  f"Fashion-MNIST at 32x32, features {p['features']} (sha256 `{p['features_sha256'][:16]}...`, "
                  f"from {p['features_source']}), resize {p['resize_filter']}.", "",
                  "| comparison | samples each side | FID | KID (95% CI) |", "| --- | --- | --- | --- |"]
        for name, c in s["comparisons"].items():
            lines.append(f"| {name} | {c['num_each_side']} | {fmt(c['fid'], 2)} | {fmt(c['kid'], 4)} "
                         f"(± {fmt(c['kid_ci95'], 4)}) |")
        lines.append("")
    gens = [k for k in ("stylegan2", "dcgan") if k in all_sections]
    if gens:
        lines += ["## Generators on Fashion-MNIST vs its test split", "",
                  "| model | checkpoint | FID | KID (std; 95% CI) | precision | recall | IS (fashion-mnist classifier) "
                  "| class TVD | near-duplicates | samples (gen / real) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key in gens:
            s = all_sections[key]
            r = {x["name"]: x for x in s["results"]}
            fid, kid = r.get("fid"), r.get("kid")
            prov = (fid or kid)["provenance"]
            # a std of ~0 means every subset was the whole set (N <= subset size): no spread to show
            kid_std = kid["std"] if kid and kid["std"] is not None and kid["std"] > 1e-12 else None
            kid_txt = f"{fmt(kid['value'], 4)} ({fmt(kid_std, 4)}; ± {fmt(kid['ci95'], 4)})" if kid else "-"
            lines.append(
                f"| {s['arch']} ({s['run']}) | {s['checkpoint']}, {s['kimg']:.1f} kimg | "
                f"{fmt(fid['value'], 2) if fid else '-'} | {kid_txt} | "
                f"{fmt(r['precision']['value']) if 'precision' in r else '-'} | "
                f"{fmt(r['recall']['value']) if 'recall' in r else '-'} | "
                f"{fmt(r['is']['value'], 2) + ' ± ' + fmt(r['is']['std'], 2) if 'is' in r else '-'} | "
                f"{fmt(r['class_tvd']['value']) if 'class_tvd' in r else '-'} | "
                f"{fmt(r['near_duplicates']['value']) if 'near_duplicates' in r else '-'} | "
                f"{prov['num_fake']} / {prov['num_real']} |")
        first = all_sections[gens[0]]["results"][0]["provenance"]
        lines += ["", f"Provenance: features {first.get('features')} sha256 `{first.get('features_sha256', '')[:16]}...`"
                      f" ({first.get('features_source')}); resize {first.get('resize_filter')}; reference "
                      f"{first.get('dataset')} {first.get('split')} split at {first.get('resolution')}px; generated "
                      f"images quantised to uint8 first; truncation psi {first.get('truncation_psi')}; latent seed "
                      f"{first.get('seed')}; conditional models get classes drawn from the test labels.", ""]
        for key in gens:
            clf = {x["name"]: x for x in all_sections[key]["results"]}.get("is")
            if clf:
                lines += [f"IS/class figures use: {clf['provenance']['classifier']} (not the Inception network; "
                          "not comparable with published Inception Scores).", ""]
                break
    if "toys" in all_sections:
        t = all_sections["toys"]
        lines += ["## Mode collapse on the 2-D mixtures", "", t["definition"] + ".", "",
                  "| data | preset (loss) | kimg | modes captured | high-quality share | reverse KL | samples | train s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in t["rows"]:
            lines.append(f"| {row['data']} | {row['preset']} ({row['loss']}) | {row['kimg']:.0f} | "
                         f"{row['modes_captured']}/{row['modes_total']} | {fmt(row['high_quality'])} | "
                         f"{fmt(row['reverse_kl'])} | {row['num_samples']} | {row['train_seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", default=["sanity", "stylegan2", "dcgan", "toys"])
    p.add_argument("--num", type=int, default=2000, help="generated images (and real images) per FID/KID")
    p.add_argument("--metrics", default="fid,kid,pr,is,classes,collapse")
    p.add_argument("--toy-kimg", type=float, default=300)
    p.add_argument("--toy-samples", type=int, default=10000)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--stylegan2-run", default=None)
    p.add_argument("--dcgan-run", default=None)
    p.add_argument("--render-only", action="store_true")
    p.add_argument("--store", default="metrics.json",
                   help="results file under benchmarks/results (two processes can fill two files); "
                        "metrics.md is rendered from every metrics*.json there")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from trainer.device import select_device
    device = select_device(args.device)
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = RESULTS / args.store
    all_sections = json.loads(store.read_text()) if store.is_file() else {}
    if not args.render_only:
        all_sections["_env"] = {"machine": f"{os.cpu_count()} CPU cores" + (f", {torch.cuda.get_device_name()}"
                                                                           if device.type == "cuda" else ", no GPU"),
                                "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device)}
        for section in args.sections:
            t0 = time.time()
            if section == "sanity":
                all_sections[section] = section_sanity(args.num, device)
            elif section in ("stylegan2", "dcgan"):
                chosen = getattr(args, f"{section}_run")
                run = Path(chosen) if chosen else newest_run(f"*{'stylegan2-cond' if section == 'stylegan2' else 'dcgan'}"
                                                             f"-fashion-mnist")
                if run is None:
                    print(f"{section}: no run found under runs/; skipped")
                    continue
                all_sections[section] = section_generator(run, args.num, device, args.metrics)
            elif section == "toys":
                all_sections[section] = section_toys(args.toy_kimg, args.toy_samples)
            print(f"{section}: {time.time() - t0:.0f} s", flush=True)
            text = json.dumps(all_sections, indent=1, default=float)
            atomic_write(store, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    merged = {}
    for path in sorted(RESULTS.glob("metrics*.json")):
        merged.update(json.loads(path.read_text()))
    md = render(merged)
    atomic_write(RESULTS / "metrics.md", lambda tmp: Path(tmp).write_text(md + "\n", encoding="utf-8"))
    print(md)


if __name__ == "__main__":
    main()
