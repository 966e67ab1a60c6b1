"""The one fitting loop: resuming continues the same run, old states still load, recipes differ only in numbers."""

from __future__ import annotations

import torch

from imgdiff.models import build_denoiser
from imgdiff.tasks import default_config
from imgdiff.train.fit import Fitter, Recipe, trainable_copy


def tiny() -> tuple[dict, torch.nn.Module]:
    cfg = default_config("denoise")
    cfg["net"].update(base=8, mults=[1, 2], blocks=1, emb_dim=16)
    torch.manual_seed(0)
    return cfg, build_denoiser(cfg)


def crops(gen: torch.Generator) -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1


def run(fitter: Fitter, steps: int) -> None:
    fitter.fit(crops, lambda taken: taken / steps)


def weights(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_a_resumed_run_takes_the_steps_an_unbroken_one_takes():
    recipe = Recipe(lr=1e-3, warmup=3, decay_fraction=0.0)  # the LR follows the step count only
    cfg, model = tiny()
    straight = Fitter(cfg, model, recipe, seed=3)
    run(straight, 4)

    cfg, model = tiny()
    first = Fitter(cfg, model, recipe, seed=3)
    run(first, 2)
    state = first.state_tensors()
    assert any(k.startswith("optim.") and k.endswith(".step") for k in state)
    cfg, model = tiny()
    torch.nn.init.zeros_(next(model.parameters()))  # everything must come from the state
    resumed = Fitter(cfg, model, recipe, seed=99)
    resumed.load_state_tensors(state, step=2, seed=99)
    run(resumed, 2)
    assert resumed.step == straight.step == 4
    assert torch.equal(weights(resumed.model), weights(straight.model))
    assert torch.equal(weights(resumed.shipped), weights(straight.shipped))
    assert not torch.equal(weights(straight.model), weights(straight.shipped))  # the EMA is its own copy


def test_states_saved_before_optimizer_state_dict_still_resume():
    """Older runs stored Adam's moments per parameter index as opt.{i}.exp_avg, the step in metadata."""
    recipe = Recipe(lr=1e-3, warmup=1, decay_fraction=0.0)
    cfg, model = tiny()
    first = Fitter(cfg, model, recipe)
    run(first, 2)
    old = {}
    for k, v in first.state_tensors().items():
        if k.startswith("optim."):
            if not k.endswith(".step"):
                old["opt." + k[len("optim.") :]] = v
        else:
            old[k] = v
    twins = []
    for state in (first.state_tensors(), old):
        cfg, model = tiny()
        f = Fitter(cfg, model, recipe)
        f.load_state_tensors(state, step=2)
        assert float(f.optim.state_dict()["state"][0]["step"]) == 2
        run(f, 2)
        twins.append(weights(f.model))
    assert torch.equal(*twins)


def test_recipe_schedule():
    r = Recipe(lr=1.0, warmup=4, decay_fraction=0.5)
    assert r.lr_at(0, 0.0) == 0.25 and r.lr_at(3, 0.1) == 1.0
    assert r.lr_at(10, 0.5) == 1.0 and abs(r.lr_at(10, 1.0) - 0.05) < 1e-9
    constant = Recipe(lr=2e-4, warmup=1, decay_fraction=0.0)
    assert {constant.lr_at(i, f) for i, f in ((0, 0.0), (5, 0.99))} == {2e-4}


def test_style_finetune_leaves_the_loaded_model_untouched():
    cfg, model = tiny()
    model.eval().requires_grad_(False)
    before = weights(model).clone()
    copy = trainable_copy(model, cfg, torch.device("cpu"))
    f = Fitter(cfg, copy, Recipe(lr=1e-2, ema=None, warmup=1, decay_fraction=0.0, clip=None))
    run(f, 2)
    assert f.shipped is copy and torch.equal(weights(model), before)
    assert not torch.equal(weights(copy), before)


def test_amplitude_loss_asks_for_detail_not_for_its_place():
    """A detail pattern moved within its tile costs nothing (phase-free); the same tile smoothed does."""
    import torch.nn.functional as F

    from imgdiff.train.objectives import amplitude_loss

    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    shifted = torch.cat(
        [torch.roll(target[..., :32, :32], (5, 9), (-2, -1)), torch.roll(target[..., :32, 32:], (3, 1), (-2, -1))], -1
    )
    shifted = torch.cat([shifted, target[..., 32:, :]], -2)
    smooth = F.avg_pool2d(F.pad(target, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert float(amplitude_loss(target, target)) == 0
    assert float(amplitude_loss(shifted, target)) < 1e-5 < float((shifted - target).abs().mean())
    assert float(amplitude_loss(smooth, target)) > 0.05


def test_a_texture_loss_run_records_its_weight_and_keeps_it_on_resume(runner, tmp_path):
    from imgdiff.cards import write_manifest
    from imgdiff.checkpoint import read_config
    from tests.conftest import cli
    from tests.test_train_eval import make_corpus

    data = make_corpus(tmp_path / "data")
    out, run = tmp_path / "cards" / "upscale-x2.safetensors", tmp_path / "run"
    common = ["train", "--task", "upscale-x2", "--data", str(data), "--out", str(out), "--run-dir", str(run)]
    small = ["--batch", "2", "--crop", "32", "--threads", "1", "-q", "--net", "base=8,mults=1/2,emb_dim=16"]
    r = cli(runner, *common, *small, "--max-steps", "2", "--texture-loss", "0.25")
    assert r.exit_code == 0, r.stderr
    assert read_config(out)["texture_loss"] == 0.25
    r = cli(runner, *common, *small, "--max-steps", "1", "--resume", "--texture-loss", "3")
    assert r.exit_code == 0, r.stderr
    state_cfg = read_config(run / "state.safetensors")
    assert state_cfg["texture_loss"] == 0.25
    write_manifest(out.parent)
    assert "| loss | L1 + 0.25 x L1 of 32-px tiles' Fourier amplitudes" in (out.parent / "MODEL_CARDS.md").read_text()
    for bad in ("nan", "-1"):
        r = cli(runner, *common, *small, "--max-steps", "1", "--texture-loss", bad)
        assert r.exit_code == 2, r.stderr
    r = cli(
        runner,
        "train",
        "--task",
        "generate",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "g.safetensors"),
        "--run-dir",
        str(tmp_path / "g"),
        "--max-steps",
        "1",
        "--texture-loss",
        "0.1",
        *small[:6],
    )
    assert r.exit_code == 2 and "--texture-loss" in r.stderr
