"""The ablations of convergence/README.md's diagnosis (issue 15): one member, one knob changed.

A diagnostic harness, kept so that every number in that README's "things that
did not change this" list can be rerun: one member of the cpu preset trains
in a host loop of the jitted `methods.train_step` (the sweep's own step), with
one setting changed through its JSON argument (config fields as `configure.resolve`
overrides, or the harness's knobs: `norm`/`dnorm` "none" drop the generator's /
discriminator's instance norm, `d_lr_mult` scales the discriminator's updates,
`shared_patients` draws source and target from the same patients, `target`
"inv" / "brain_inv" replaces T1 by a known remap of Flair). It prints and
appends to results.jsonl (next to this file, or $ABLATIONS_OUT) what
`scoring.score` makes of the holdout translations against the real T1: pixel r
(``r``) and structure r inside the brain on healthy slices, the gate's verdict,
the lesion score on tumor slices (mean share of the real lesion's contrast
kept: ``lesion_score``; rows before it recorded ``lesion_kept``, the share of
tumor slices keeping >= half), Flair's own pixel r as the floor, and the target
discriminator's mean scores on holdout real T1 / Flair / translations.

    python experiments/convergence/ablations.py '{"method": "cyclegan", "steps": 1000, "ratio": 1.0, "lambda_cycle": 4.0}'
"""
import dataclasses, functools, sys, time, json, os, types
import jax, jax.numpy as jnp, numpy as np
from flax import linen as nn
from jax_translate.config import Member
from jax_translate.configure import resolve
from jax_translate.data import dataset, domains
from jax_translate.models.generators import ResnetGenerator
from jax_translate.training import methods
from jax_translate.images import from_model_range, to_model_range
from jax_translate.training.members import build_members, domain_indices, sample_batch
from jax_translate.evaluation import scoring

SPLITS = None  # loaded in main (building the dataset spawns processes: not at import)

def scored(method, ratio, seed, translated, hold):
    """(healthy row, tumor row) of `scoring.score`: ``translated`` (N, H, W) of
    ``hold``'s Flair, as a member (``ratio``, ``seed``) of ``method`` into T1."""
    cfg = types.SimpleNamespace(method=method, members=[Member(ratio, seed)], target="t1")
    return tuple(scoring.score(cfg, translated[None], hold))

class PixelGenerator(nn.Module):
    """A generator that can only remap intensities: 1x1 convs (no texture, no context)."""
    width: int = 32

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.leaky_relu(nn.Conv(self.width, (1, 1))(x), 0.2)
        h = nn.leaky_relu(nn.Conv(self.width, (1, 1))(h), 0.2)
        return jnp.tanh(nn.Conv(1, (1, 1))(h))


class SpectralPatchDiscriminator(nn.Module):
    """The PatchGAN's layout with every conv kernel divided by its largest singular value
    (Miyato et al. 2018, computed exactly on the (k*k*in, out) matrix) and no instance norm."""
    ndf: int = 16
    n_layers: int = 3

    @nn.compact
    def __call__(self, x):
        def conv(h, features, stride, name):
            kernel = self.param(name, nn.initializers.normal(0.02), (4, 4, h.shape[-1], features))
            sigma = jnp.linalg.norm(kernel.reshape(-1, features), ord=2)
            bias = self.param(name + "_bias", nn.initializers.zeros, (features,))
            return jax.lax.conv_general_dilated(h, kernel / sigma, (stride, stride), ((1, 1), (1, 1)),
                                                dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
        h = nn.leaky_relu(conv(x, self.ndf, 2, "conv0"), 0.2)
        for n in range(1, self.n_layers):
            h = nn.leaky_relu(conv(h, self.ndf * min(2 ** n, 8), 2, f"conv{n}"), 0.2)
        h = nn.leaky_relu(conv(h, self.ndf * min(2 ** self.n_layers, 8), 1, f"conv{self.n_layers}"), 0.2)
        return conv(h, 1, 1, "scores")


def run(method="cyclegan", steps=1000, ratio=0.5, seed=0, gen="resnet", norm="instance", dnorm="instance", dlayers=None, d_lr_mult=1.0, shared_patients=False, lr=2e-4, model=None,
        target_fn=None, tag="", **over):
    cfg = resolve(method, "cpu", target_tumor_ratios=(ratio,), steps=steps, learning_rate=lr,
                      **({"model": model} if model else {}), **over)
    train, hold = SPLITS["train"], SPLITS["holdout"]
    if target_fn is not None:
        train = dataclasses.replace(train, t1=target_fn(train.flair, train.brain_mask))
        hold = dataclasses.replace(hold, t1=target_fn(hold.flair, hold.brain_mask))
    # The knobs are parts handed to the Method and a domain builder handed to
    # build_members (no library attribute is replaced).
    gen_net = dis_net = d_opt = None
    if d_lr_mult != 1.0:
        import optax
        d_opt = lambda c: optax.chain(methods.Method(c).optimizer(), optax.scale(d_lr_mult))  # noqa: E731
    if gen == "pixel":
        gen_net = PixelGenerator()
    elif norm != "instance":
        gen_net = ResnetGenerator(ngf=cfg.model.ngf, n_blocks=cfg.model.n_blocks, norm=norm)
    if dnorm == "spectral":
        dis_net = SpectralPatchDiscriminator(ndf=cfg.model.ndf, n_layers=dlayers or cfg.model.n_disc_layers)
    elif dnorm != "instance" or dlayers:
        from jax_translate.models.discriminators import PatchDiscriminator
        dis_net = PatchDiscriminator(ndf=cfg.model.ndf, n_layers=dlayers or cfg.model.n_disc_layers, norm=dnorm)
    m = methods.Method(cfg, parts=methods.Parts(generator=gen_net, discriminator=dis_net,
                                                discriminator_optimizer=d_opt))
    def every_patient(labels, patient_id, sizes, seed):
        p = np.unique(patient_id); return p, p

    def shared_domains(cfg, train, ratio, seed):  # source and target from the same patients
        sizes = domains.DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
        return domains.unpaired_domains(train.label, train.patient_id, ratio, sizes, seed,
                                        split=every_patient)
    shared, members = build_members(
        cfg, train, domain_builder=shared_domains if shared_patients else domain_indices)
    mem = jax.tree_util.tree_map(lambda x: x[0], members)
    state = m.init(jax.random.PRNGKey(seed), train.flair.shape[1:])
    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(state):
        key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), 1 << 20)
        batch, _ = sample_batch(shared, mem, key, cfg, state.step)
        return methods.train_step(m, state, batch, jnp.bool_(True))
    t = time.time()
    for i in range(steps):
        state, met = step(state)
    jax.block_until_ready(state)
    dt = time.time() - t
    idx = domains.holdout_indices(hold.label, domains.DomainSizes(n_holdout=350))
    h = hold.take(idx)
    fwd = jax.jit(lambda p, x: m.translate(p, x))
    out = np.concatenate([from_model_range(fwd(state.generator, to_model_range(h.flair[i:i+50])))
                          for i in range(0, len(h), 50)])
    healthy, tum = scored(method, ratio, seed, out, h)
    flair_as_t1, _ = scored(method, ratio, seed, h.flair, h)
    dscore = {}
    if method in ("cyclegan", "gan"):
        D = jax.jit(lambda p, x: m.discriminator_net.apply({"params": p}, x).mean(axis=(1, 2, 3)))
        for nm, imgs in (("t1", h.t1[:60]), ("flair", h.flair[:60]), ("fake", out[:60])):
            dscore[nm] = round(float(D(state.discriminator["b"], to_model_range(imgs)).mean()), 3)
    res = dict(shared_patients=shared_patients, tag=tag, gen=gen, dscore=dscore, dnorm=dnorm, d_lr_mult=d_lr_mult, method=method, steps=steps, ratio=ratio, norm=norm, lr=lr,
               r=round(healthy["fidelity_r"], 3), structure_r=round(healthy["structure_r"], 3),
               quality=healthy["quality"], r_flair=round(flair_as_t1["fidelity_r"], 3),
               lesion_score=round(tum["lesion_score"], 3), sec=round(dt, 1),
               loss={k: round(float(v), 3) for k, v in met.items()})
    print(json.dumps(res), flush=True)
    with open(os.environ.get("ABLATIONS_OUT", os.path.join(os.path.dirname(__file__), "results", "ablations.jsonl")), "a") as f: f.write(json.dumps(res) + "\n")
    if os.environ.get("SAVE"):
        np.savez_compressed(f"{os.environ['SAVE']}.npz", out=out, flair=h.flair, t1=h.t1, label=h.label, tumor=h.tumor_mask)
    return state, out, h

if __name__ == "__main__":
    SPLITS = dataset.load(os.environ.get("SIZE", "64"), os.environ.get("JAX_TRANSLATE_DATA_DIR"))
    kw = json.loads(sys.argv[1])
    tf = kw.pop("target", None)
    if tf == "inv": kw["target_fn"] = lambda f, b: 1 - f
    if tf == "brain_inv": kw["target_fn"] = lambda f, b: b * (1 - f)
    # a partial "model" changes those fields of the cpu preset's networks (configure.resolve)
    run(**kw)
