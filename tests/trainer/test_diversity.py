"""The remedies for mode collapse (trainer.training.diversity): each changes training as its paper says,
is logged, resumes exactly, and refuses combinations it cannot serve."""
import pytest
import torch

from trainer.training.diversity import (HistoricalAverage, PackedDiscriminator, feature_matching_loss, head_features,
                               mode_seeking_loss, unrolled_fake_logits)
from trainer.events import read_events
from trainer.training.loop import train
from trainer.models.mlp import MLPDiscriminator


def test_mode_seeking_rewards_images_that_differ_as_latents_do():
    z = torch.randn(8, 4)
    same = torch.zeros(8, 2).requires_grad_(True)       # a collapsed generator: every image alike
    varied = z[:, :2].clone().requires_grad_(True)
    assert mode_seeking_loss(same, z) > 100 * mode_seeking_loss(varied, z)


def test_packing_judges_samples_together():
    inner = MLPDiscriminator(2 * 3, 0, 16, 2)
    D = PackedDiscriminator(inner, 3)
    x = torch.randn(12, 2)
    logits, _ = D(x)
    assert logits.shape == (4,)
    assert torch.allclose(logits, inner(x.reshape(4, 6))[0])
    assert head_features(D, x, None).shape == (4, 16)
    with pytest.raises(ValueError, match="cannot be packed"):
        D(torch.randn(10, 2))


def test_feature_matching_is_zero_only_when_features_agree():
    D = MLPDiscriminator(2, 0, 16, 2)
    real = torch.randn(64, 2)
    assert feature_matching_loss(D, real, real.clone(), None, None).item() == pytest.approx(0, abs=1e-12)
    assert feature_matching_loss(D, real, real + 3, None, None).item() > 1e-3


def test_historical_average_is_the_running_mean():
    net = torch.nn.Linear(2, 1)
    history = HistoricalAverage(net)
    values = []
    for v in (1.0, 3.0, 5.0):
        with torch.no_grad():
            net.weight.fill_(v)
        history.update(net)
        values.append(v)
    assert torch.allclose(history.means[0], torch.full_like(net.weight, sum(values) / 3))
    with torch.no_grad():
        net.weight.fill_(3.0)
    assert history.penalty(net).item() == pytest.approx(0.0, abs=1e-10)    # at the mean: no penalty
    with torch.no_grad():
        net.weight.fill_(5.0)
    assert history.penalty(net).item() == pytest.approx(2.0 ** 2 * net.weight.numel())


def test_unrolled_look_ahead_leaves_d_untouched_and_reaches_g():
    D = MLPDiscriminator(2, 0, 16, 2).requires_grad_(False)
    before = [p.clone() for p in D.parameters()]
    fake = torch.randn(16, 2, requires_grad=True)
    plain, _ = D(fake)
    ahead = unrolled_fake_logits(D, "nonsat", 3, 0.5, torch.randn(16, 2), fake, None, None)
    assert not torch.allclose(plain, ahead)                 # D moved in the look-ahead ...
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters()))   # ... but not for real
    ahead.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


@pytest.mark.parametrize("remedy", [{"pack": 4}, {"feature_matching": 1.0}, {"historical_averaging": 1e-3},
                                    {"mode_seeking": 0.1}, {"unrolled_steps": 2}])
@pytest.mark.slow
def test_each_remedy_trains_logs_and_resumes_exactly(tiny, tmp_path, remedy):
    cfg = tiny("toy-gan", source="ring8", resolution=0, train={"kimg": 0.064, "snapshot_kimg": 0.032, **remedy})
    straight = train(cfg, outdir=tmp_path / "straight", progress=False)
    assert straight.state == "finished"
    names = {k for e in read_events(straight.run_dir / "events.jsonl") if e["kind"] == "scalars" for k in e["values"]}
    expected = {"feature_matching": "diversity/feature_matching", "historical_averaging": "diversity/hist_G",
                "mode_seeking": "diversity/mode_seeking"}.get(next(iter(remedy)))
    assert expected is None or expected in names
    # the same run in two halves ends with the same weights
    half = tiny("toy-gan", source="ring8", resolution=0, train={"kimg": 0.032, "snapshot_kimg": 0.032, **remedy})
    first = train(half, outdir=tmp_path / "halves", progress=False)
    resumed = train(run_dir=first.run_dir, resume=True, kimg=0.064, progress=False)
    from trainer.checkpoint import load_state
    a = load_state(straight.run_dir / "state" / "last.pt")["G"]
    b = load_state(resumed.run_dir / "state" / "last.pt")["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_combinations_the_remedies_cannot_serve_are_refused(tiny, tmp_path):
    from trainer.config import ConfigError
    with pytest.raises(ValueError, match="does not divide"):
        train(tiny("toy-gan", source="ring8", resolution=0, train={"pack": 3}), outdir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="unconditional"):
        train(tiny("cgan", train={"pack": 2}), outdir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="--pack 0"):
        train(tiny("dcgan", train={"pack": 0}), outdir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def _batch_dependence(D, x) -> float:
    """How much sample 0's logit moves when only the other samples change: 0 for a D that judges
    each sample alone."""
    with torch.no_grad():
        before = D(x)[0][0]
        changed = x.clone()
        changed[1:] = changed[1:] * 3.0
        return float((D(changed)[0][0] - before).abs())


@pytest.mark.parametrize("arch, shape, extra", [("mlp", (8, 2), {}), ("dcgan", (8, 1, 16, 16), {"d_norm": "none"}),
                                                ("stylegan2", (8, 1, 16, 16), {})])
def test_every_family_can_judge_the_batch_as_a_whole(arch, shape, extra):
    """Minibatch standard deviation and minibatch discrimination are options of every family:
    with either on, D's verdict on one sample depends on the others (that is how D sees a
    collapsed batch); with both off it does not."""
    from trainer.config import ModelConfig
    from trainer.models import build_discriminator
    channels = 2 if arch == "mlp" else 1
    base = dict(arch=arch, img_resolution=0 if arch == "mlp" else 16, img_channels=channels, width=8, max_width=16,
                hidden=16, depth=2, **extra)
    x = torch.randn(*shape)
    torch.manual_seed(0)
    alone = build_discriminator(ModelConfig(**base, mbstd_group=0))
    assert _batch_dependence(alone, x) == 0
    for option in ({"mbstd": True, "mbstd_group": 4}, {"minibatch_discrimination": True, "mbstd_group": 0}):
        if arch == "stylegan2" and "mbstd" in option:
            option = {"mbstd_group": 4}                         # stylegan2's D has it unless the group is 0
        torch.manual_seed(0)
        D = build_discriminator(ModelConfig(**base, **option))
        assert _batch_dependence(D, x) > 1e-6, option


@pytest.mark.slow
def test_a_toy_run_with_batch_features_trains_and_resumes_exactly(tiny, tmp_path):
    model = {"mbstd": True, "mbstd_group": 4, "minibatch_discrimination": True}
    straight = train(tiny("toy-gan", source="ring8", resolution=0, model=model,
                          train={"kimg": 0.064, "snapshot_kimg": 0.032}), outdir=tmp_path / "straight", progress=False)
    first = train(tiny("toy-gan", source="ring8", resolution=0, model=model,
                       train={"kimg": 0.032, "snapshot_kimg": 0.032}), outdir=tmp_path / "halves", progress=False)
    resumed = train(run_dir=first.run_dir, resume=True, kimg=0.064, progress=False)
    from trainer.checkpoint import load_state
    a = load_state(straight.run_dir / "state" / "last.pt")["D"]
    b = load_state(resumed.run_dir / "state" / "last.pt")["D"]
    assert any("minibatch.T" in k for k in a) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mode_seeking", [0.0, 1.0])
def test_mode_seeking_compares_two_latents_of_the_same_class(tiny, tmp_path, mode_seeking):
    """MSGAN's pairs share a condition: with the term on, the G step's second half of labels
    repeats the first half, so the term asks for variety within each class."""
    from trainer.training.loop import Trainer
    trainer = Trainer(tiny("cgan", train={"mode_seeking": mode_seeking}), tmp_path, progress=False,
                      log=lambda *_: None)
    torch.manual_seed(0)
    c_real = torch.arange(9) % 10   # odd: the last label has no partner
    c_fake = trainer._generator_labels(c_real)
    assert c_fake.shape == c_real.shape
    paired = torch.equal(c_fake[:4], c_fake[4:8])
    assert paired == bool(mode_seeking)
    if not mode_seeking:   # the plain permutation of the real labels
        assert sorted(c_fake.tolist()) == sorted(c_real.tolist())
    trainer.train_step()   # and a step runs with the paired labels
