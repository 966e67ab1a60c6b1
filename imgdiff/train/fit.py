"""The one fitting loop: AdamW on a task objective, optional EMA, warm-up and a cosine tail.

`imgdiff train` (hours, time-boxed, resumable) and stylize's per-style fine-tune (a few hundred
steps) differ only in their `Recipe`, so both run `Fitter.fit`; the state a run resumes from is
`Fitter.state_tensors()` (model, EMA, `optimizer.state_dict()`, RNG), whatever the optimiser keeps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from ..models import build_denoiser
from .objectives import train_step


@dataclass(frozen=True)
class Recipe:
    """How the weights move. warmup 1 and decay_fraction 0 give a constant learning rate."""

    lr: float
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    ema: float | None = 0.999  # None: no EMA copy (a short fine-tune uses its last weights)
    warmup: int = 300
    decay_fraction: float = 0.25  # the last part of the run anneals the LR (cosine) to 5 %
    clip: float | None = 1.0  # gradient-norm clip

    def lr_at(self, step: int, frac: float) -> float:
        lr = self.lr * min(1.0, (step + 1) / max(1, self.warmup))
        start = 1 - self.decay_fraction
        if self.decay_fraction > 0 and frac > start:
            t = min(1.0, (frac - start) / self.decay_fraction)
            lr *= 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))
        return lr


def trainable_copy(model: torch.nn.Module, cfg: dict, device: torch.device) -> torch.nn.Module:
    """A fresh network from the checkpoint config holding `model`'s weights, ready to train (the
    loaded one stays frozen for inference)."""
    trained = build_denoiser(cfg).to(device)
    trained.load_state_dict(model.state_dict())
    return trained.train().requires_grad_(True)


class Fitter:
    """A model with its optimiser, EMA and random streams: everything a training run carries."""

    def __init__(self, cfg: dict, model: torch.nn.Module, recipe: Recipe, seed: int = 0) -> None:
        self.cfg, self.model, self.recipe = cfg, model, recipe
        dev = next(model.parameters()).device
        self.ema = copy.deepcopy(model).eval().requires_grad_(False) if recipe.ema is not None else None
        self.optim = torch.optim.AdamW(
            model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=recipe.betas
        )
        self.gen = torch.Generator().manual_seed(seed)  # crop choice (CPU)
        self.ngen = torch.Generator(device=dev).manual_seed(seed + 1)  # noise (on the training device)
        self.step = 0

    @property
    def shipped(self) -> torch.nn.Module:
        """The weights a run ships: the EMA where there is one."""
        return self.ema if self.ema is not None else self.model

    def take_step(self, clean: torch.Tensor, lr: float, autocast: AbstractContextManager | None = None) -> torch.Tensor:
        for g in self.optim.param_groups:
            g["lr"] = lr
        loss = train_step(self.cfg, self.model, self.optim, clean, self.ngen, clip=self.recipe.clip, autocast=autocast)
        if self.ema is not None:
            d = min(self.recipe.ema, (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                for pe, pm in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                    pe.lerp_(pm, 1 - d)
        self.step += 1
        return loss

    def fit(
        self,
        sample: Callable[[torch.Generator], torch.Tensor],
        progress: Callable[[int], float],
        after_step: Callable[[int, torch.Tensor, float], None] | None = None,
        autocast: AbstractContextManager | None = None,
    ) -> None:
        """Step until `progress(steps taken in this call)` reaches 1 (a step count or a clock);
        `sample(gen)` draws the clean crops, `after_step(step, loss, lr)` validates and saves."""
        start = self.step
        while (frac := progress(self.step - start)) < 1:
            lr = self.recipe.lr_at(self.step, frac)
            loss = self.take_step(sample(self.gen), lr, autocast)
            if after_step:
                after_step(self.step, loss, lr)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What resuming needs, as named CPU tensors (safetensors holds tensors only); copies, so
        later steps do not change a state already taken."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        for i, st in self.optim.state_dict()["state"].items():
            for name, value in st.items():
                tensors[f"optim.{i}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
        tensors["rng.cpu"] = self.gen.get_state()
        if self.ngen.device.type == "cpu":
            tensors["rng.dev_cpu"] = self.ngen.get_state()
        return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}

    def load_state_tensors(self, t: dict[str, torch.Tensor], step: int, seed: int = 0) -> None:
        """The inverse of state_tensors; also reads states saved before it, whose Adam moments were
        stored as `opt.{i}.exp_avg` / `opt.{i}.exp_avg_sq` with the step count in the metadata."""
        dev = next(self.model.parameters()).device
        self.model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
        if self.ema is not None:
            self.ema.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
        state: dict[int, dict] = {}
        for key, value in t.items():
            kind, _, rest = key.partition(".")
            if kind in ("optim", "opt"):
                index, _, name = rest.partition(".")
                state.setdefault(int(index), {})[name] = value.clone() if name == "step" else value.to(dev, copy=True)
        for st in state.values():
            st.setdefault("step", torch.tensor(float(step)))
        self.optim.load_state_dict({"state": state, "param_groups": self.optim.state_dict()["param_groups"]})
        self.step = step
        self.gen.set_state(t["rng.cpu"])
        if dev.type == "cpu" and "rng.dev_cpu" in t:
            self.ngen.set_state(t["rng.dev_cpu"])
        else:
            self.ngen.manual_seed(seed + step)
