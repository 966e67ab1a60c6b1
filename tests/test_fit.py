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
