"""The PyTorch-eager baseline: the same networks and steps, the reference's way.

This is how pytorch-CycleGAN-and-pix2pix (which the paper's code forks) runs
a sweep: one member at a time, an eager forward and backward per step. The
networks copy :mod:`jax_translate.models` layer by layer (reflect-padded
ResNet with nearest x2 + 3x3 conv upsampling, PatchGAN, affine-free instance
norm, biases everywhere) and :func:`check_equivalent` verifies it by loading
the JAX weights and comparing outputs. The steps follow
:mod:`jax_translate.training.methods`: generator update (discriminators
frozen), then discriminator update on pooled pre-update fakes; Adam(beta1).

Only what is timed lives here; the JAX side is in ``jax_side.py``.
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jax_translate.config import SweepConfig


def _conv(cin, cout, k, stride=1, padding=0):
    layer = nn.Conv2d(cin, cout, k, stride, padding)
    nn.init.normal_(layer.weight, 0.0, 0.02)
    nn.init.zeros_(layer.bias)
    return layer


class _PaddedConv(nn.Sequential):
    def __init__(self, cin, cout, k, pad):
        super().__init__(nn.ReflectionPad2d(pad), _conv(cin, cout, k))


def _norm(c):
    return nn.InstanceNorm2d(c, affine=False, eps=1e-5)


class ResnetBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(_PaddedConv(c, c, 3, 1), _norm(c), nn.ReLU(True),
                                  _PaddedConv(c, c, 3, 1), _norm(c))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Sequential):
    """jax_translate.models.ResnetGenerator with upsample='resize'."""

    def __init__(self, ngf, n_blocks, cin=1, cout=1):
        layers = [_PaddedConv(cin, ngf, 7, 3), _norm(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2**i
            layers += [_conv(c, 2 * c, 3, 2, 1), _norm(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 4 // 2**i
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _PaddedConv(c, c // 2, 3, 1),
                       _norm(c // 2), nn.ReLU(True)]
        layers += [_PaddedConv(ngf, cout, 7, 3), nn.Tanh()]
        super().__init__(*layers)


class PatchDiscriminator(nn.Sequential):
    def __init__(self, ndf, n_layers, cin=1):
        layers = [_conv(cin, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for n in range(1, n_layers):
            layers += [_conv(c, ndf * min(2**n, 8), 4, 2, 1), _norm(ndf * min(2**n, 8)),
                       nn.LeakyReLU(0.2, True)]
            c = ndf * min(2**n, 8)
        last = ndf * min(2**n_layers, 8)
        layers += [_conv(c, last, 4, 1, 1), _norm(last), nn.LeakyReLU(0.2, True),
                   _conv(last, 1, 4, 1, 1)]
        super().__init__(*layers)


class ImagePool:
    """The reference's ImagePool (Shrivastava et al.)."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)


def _lsgan(scores, real):
    return torch.mean((scores - (1.0 if real else 0.0)) ** 2)


def _vanilla(logits, real):
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class Member:
    """One member's networks, optimizers and pools, and its training step."""

    def __init__(self, cfg: SweepConfig, device):
        m = cfg.model
        self.cfg, self.method = cfg, cfg.method
        g_names = ("ab", "ba") if cfg.method == "cyclegan" else ("ab",)
        d_names = {"cyclegan": ("b", "a"), "gan": ("b",), "condgan": ("b",), "l1": ()}[cfg.method]
        self.g = nn.ModuleDict({n: ResnetGenerator(m.ngf, m.n_blocks) for n in g_names}).to(device)
        cin = 2 if cfg.method == "condgan" else 1
        self.d = nn.ModuleDict({n: PatchDiscriminator(m.ndf, m.n_disc_layers, cin)
                                for n in d_names}).to(device)
        betas = (cfg.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.g.parameters(), cfg.learning_rate, betas)
        self.opt_d = (torch.optim.Adam(self.d.parameters(), cfg.learning_rate, betas)
                      if d_names else None)
        pool = 0 if cfg.method == "condgan" else cfg.pool_size
        self.pools = {n: ImagePool(pool) for n in d_names}
        self.gan = _vanilla if cfg.method == "condgan" else _lsgan

    def _score(self, name, images, source):
        if self.method == "condgan":
            images = torch.cat([source, images], 1)
        return self.d[name](images)

    def step(self, a, b):
        g, cfg = self.g, self.cfg
        self.d.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        fake_b = g["ab"](a)
        fakes = {}
        if self.method == "l1":
            loss = torch.mean(torch.abs(fake_b - b))
        else:
            fakes["b"] = fake_b.detach()
            loss = self.gan(self.score("b", fake_b, a), True)
            if self.method == "cyclegan":
                fake_a = g["ba"](b)
                fakes["a"] = fake_a.detach()
                loss = loss + self.gan(self.score("a", fake_a, a), True)
                cycle = (torch.mean(torch.abs(g["ba"](fake_b) - a))
                         + torch.mean(torch.abs(g["ab"](fake_a) - b)))
                identity = (torch.mean(torch.abs(g["ab"](b) - b))
                            + torch.mean(torch.abs(g["ba"](a) - a)))
                lam = cfg.lambda_cycle
                loss = loss + lam * cycle + cfg.lambda_identity * lam * identity
        loss.backward()
        self.opt_g.step()
        if self.opt_d is None:
            return
        self.d.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        reals = {"b": b, "a": a}
        d_loss = 0.0
        for name in self.d:
            pooled = self.pools[name].query(fakes[name])
            d_loss = d_loss + 0.5 * (self.gan(self.score(name, reals[name], a), True)
                                     + self.gan(self.score(name, pooled, a), False))
        d_loss.backward()
        self.opt_d.step()


def member_steps_per_s(cfg: SweepConfig, flair: np.ndarray, t1: np.ndarray, n_members: int,
                       steps_per_member: int, device: str = "cpu", warmup: int = 3) -> float:
    """Trains n_members one after another, steps_per_member steps each.

    Batches are drawn at random from images already on the device, as the JAX
    engine does. Returns member-steps/s over the timed steps (each member's
    first ``warmup`` steps are not timed).
    """
    torch.manual_seed(0)
    random.seed(0)
    torch.backends.cudnn.benchmark = True  # as the reference's train.py sets
    flair_t = torch.as_tensor(flair, device=device)   # (N, 1, H, W) in [-1, 1]
    t1_t = torch.as_tensor(t1, device=device)
    rng = np.random.default_rng(0)
    timed, total = 0.0, 0
    for _ in range(n_members):
        member = Member(cfg, device)
        for i in range(warmup + steps_per_member):
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            a = flair_t[rng.integers(0, len(flair_t), cfg.batch_size)]
            b = t1_t[rng.integers(0, len(t1_t), cfg.batch_size)]
            member.step(a, b)
        _sync(device)
        timed += time.perf_counter() - t0
        total += steps_per_member
    return total / timed


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def load_jax_params(module: nn.Module, params: dict) -> None:
    """Copies Flax conv params (HWIO kernels) into the torch module in layer order."""
    flat = []

    def walk(tree):
        for key in tree:  # flax keeps creation order, which is the layer order
            value = tree[key]
            if "kernel" in value:
                flat.append((np.asarray(value["kernel"]), np.asarray(value["bias"])))
            else:
                walk(value)

    walk(params)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != len(flat):
        raise ValueError(f"torch model has {len(convs)} convs, JAX model {len(flat)}")
    with torch.no_grad():
        for conv, (kernel, bias) in zip(convs, flat):
            conv.weight.copy_(torch.as_tensor(kernel.transpose(3, 2, 0, 1)))
            conv.bias.copy_(torch.as_tensor(bias))


def _perturbed(tree, rng):
    """Adds noise to every parameter (biases start at 0), keeping key order.

    Not jax.tree_util.tree_map: it would sort the keys, and the layer order
    is what load_jax_params relies on.
    """
    if not isinstance(tree, dict):
        return np.asarray(tree) + 0.05 * rng.standard_normal(tree.shape).astype(np.float32)
    return {key: _perturbed(value, rng) for key, value in tree.items()}


def check_equivalent(cfg: SweepConfig, seed: int = 0) -> float:
    """Max |JAX - torch| of generator and discriminator outputs on random input.

    Same weights in both; anything but float rounding means the torch
    networks are not the JAX ones.
    """
    import jax
    import jax.numpy as jnp

    from jax_translate.models import build_discriminator, build_generator

    shape = (2, 64, 64, 1)
    x = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
    worst = 0.0
    for jax_net, torch_net in (
            (build_generator(cfg.model), ResnetGenerator(cfg.model.ngf, cfg.model.n_blocks)),
            (build_discriminator(cfg.model),
             PatchDiscriminator(cfg.model.ndf, cfg.model.n_disc_layers))):
        params = jax_net.init(jax.random.PRNGKey(seed), jnp.asarray(x))["params"]
        params = _perturbed(params, np.random.default_rng(seed))
        want = np.asarray(jax_net.apply({"params": params}, jnp.asarray(x)))
        load_jax_params(torch_net, params)
        with torch.no_grad():
            got = torch_net(torch.as_tensor(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
        worst = max(worst, float(np.max(np.abs(got - want))))
    return worst
