"""Does the discriminator discriminate? The probes behind convergence/README.md's
diagnosis (issue 15).

    python experiments/convergence/discriminator_probe.py game [--g-lr-scale 1] [--steps 600]
    python experiments/convergence/discriminator_probe.py alone --fake flair|histmatch|blur

``game``: one `gan` member of the cpu preset (target ratio 1.0) trains as in a
sweep; every 100 steps the target discriminator scores held-out real T1,
translations of held-out Flair, and real Flair (means of its patch scores;
LSGAN labels: 1 real, 0 fake). ``--g-lr-scale 0`` freezes the generator, so
the discriminator plays against fixed fakes. ``alone``: the same
discriminator trained on its own, real training T1 against a fixed family of
fakes: Flair, Flair histogram-matched to T1 inside the brain (right
intensities, Flair's tissue order), or the real T1 blurred by 1.5 px.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import ndimage

from jax_translate.configure import resolve
from jax_translate.models import build_discriminator
from jax_translate.data import dataset
from jax_translate.training import losses, methods
from jax_translate.images import to_model_range
from jax_translate.training.members import build_members, sample_batch


def histogram_matched(flair, t1, brain):
    """Each slice's brain pixels: Flair's rank order, T1's values."""
    out = np.zeros_like(t1)
    for i in range(len(flair)):
        m = brain[i] > 0
        values = np.sort(t1[i][m])
        matched = np.empty_like(values)
        matched[np.argsort(flair[i][m])] = values
        out[i][m] = matched
    return out


def fakes_of(kind, s):
    if kind == "flair":
        return s.flair
    if kind == "histmatch":
        return histogram_matched(s.flair, s.t1, s.brain_mask)
    return ndimage.gaussian_filter(s.t1, (0, 1.5, 1.5))


def alone(cfg, splits, kind, steps):
    net = build_discriminator(cfg.model)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 1)))["params"]
    opt = optax.adam(cfg.learning_rate, b1=cfg.beta1)
    opt_state = opt.init(params)
    real = jnp.asarray(to_model_range(splits["train"].t1))
    fake = jnp.asarray(to_model_range(fakes_of(kind, splits["train"])))

    @jax.jit
    def step(params, opt_state, key):
        i, j = jax.random.randint(key, (2,), 0, real.shape[0])
        def loss(p):
            score = lambda x: net.apply({"params": p}, x[None])  # noqa: E731
            return 0.5 * (losses.lsgan_loss(score(real[i]), True)
                          + losses.lsgan_loss(score(fake[j]), False))
        grads = jax.grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for k in range(steps):
        params, opt_state = step(params, opt_state, jax.random.PRNGKey(k))
    score = jax.jit(lambda x: net.apply({"params": params}, x).mean((1, 2, 3)))
    held = splits["holdout"].take(np.arange(0, len(splits["holdout"]), 8))
    r, f = np.asarray(score(to_model_range(held.t1))), np.asarray(score(to_model_range(fakes_of(kind, held))))
    cut = (r.mean() + f.mean()) / 2
    print(json.dumps({"fake": kind, "steps": steps, "real_t1": round(float(r.mean()), 3),
                      "fake_score": round(float(f.mean()), 3),
                      "accuracy": round(float(((r > cut).mean() + (f < cut).mean()) / 2), 3)}))


def game(cfg, splits, g_lr_scale, steps):
    method = methods.Method(cfg)
    shared, members = build_members(cfg, splits["train"])
    member = jax.tree_util.tree_map(lambda x: x[0], members)
    state = method.init(jax.random.PRNGKey(0), (64, 64))

    @jax.jit
    def step(state):
        keys = methods.step_keys(state.key, state.step)
        batch, _ = sample_batch(shared, member, keys.batch, cfg, state.step)
        new, _ = methods.train_step(method, state, batch, jnp.bool_(True))
        # Scale the generator's move (0 freezes it): interpolate its params.
        generator = jax.tree_util.tree_map(lambda n, o: o + g_lr_scale * (n - o),
                                           new.generator, state.generator)
        return new.replace(generator=generator)

    held = splits["holdout"].take(np.arange(0, len(splits["holdout"]), 20))
    flair, t1 = jnp.asarray(to_model_range(held.flair)), jnp.asarray(to_model_range(held.t1))

    @jax.jit
    def scores(state):
        d = lambda x: method.discriminator_net.apply(  # noqa: E731
            {"params": state.discriminator["b"]}, x).mean((1, 2, 3)).mean()
        return d(t1), d(method.translate(state.generator, flair)), d(flair)

    for k in range(1, steps + 1):
        state = step(state)
        if k % 100 == 0:
            real, fake, fl = (round(float(v), 3) for v in scores(state))
            print(json.dumps({"step": k, "g_lr_scale": g_lr_scale, "real_t1": real,
                              "translations": fake, "real_flair": fl}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("game", "alone"))
    parser.add_argument("--fake", default="flair", choices=("flair", "histmatch", "blur"))
    parser.add_argument("--g-lr-scale", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    cfg = resolve("gan", "cpu", target_tumor_ratios=(1.0,), seeds=1, steps=args.steps,
                      data_dir=args.data_dir)
    splits = dataset.load_for(cfg)
    if args.mode == "alone":
        alone(cfg, splits, args.fake, args.steps)
    else:
        game(cfg, splits, args.g_lr_scale, args.steps)


if __name__ == "__main__":
    main()
