"""export-domains and judge (issue 39): anyone's translator, measured as ours are.

On the tiny preset's simulated dataset (5 patients, with tissue maps). The judge
here is a stand-in classifier that calls a translation tumor when at least 8 of
its brain pixels are nearly black (< 0.02): real T1 has none (its darkest
tissue, CSF, sits near 0.2), so whatever it counts is what a translator painted.
"""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from jax_translate import cli
from jax_translate.data import dataset, domains
from jax_translate.errors import UsageError
from jax_translate.evaluation import known_cases, quality
from jax_translate.jobs import export_domains as export_lib
from jax_translate.jobs.evaluate_run import evaluate_run
from jax_translate.jobs.judge import judge
from jax_translate.jobs.sweep import train_sweep
from jax_translate.training.members import domain_indices


class DarkSpotJudge:
    metrics = {"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0, "modality": "t1"}

    def tumor_pixels(self, images):
        return (np.asarray(images) < 0.02).reshape(len(images), -1).sum(1)

    def predict(self, images, brain_mask=None):
        dark = (np.asarray(images) < 0.02) & (np.asarray(brain_mask) > 0)
        return dark.reshape(len(images), -1).sum(1) >= 8


@pytest.fixture(scope="module")
def setting(tiny_data_dir):
    cfg = tiny_config("cyclegan", target_tumor_ratios=(0.0, 1.0), seeds=1, n_source=16,
                      n_target=16, n_holdout=16, data_dir=str(tiny_data_dir))
    splits = dataset.load_for(cfg)
    return cfg, splits, domains.holdout_set(cfg, splits["holdout"])


@pytest.fixture(scope="module")
def exported(setting, tmp_path_factory):
    cfg, splits, _ = setting
    out = tmp_path_factory.mktemp("export_npy")
    return out, export_lib.export_domains(cfg, out, splits, image_format="npy")


def _write(translations, manifest, images, fmt="npy", suffix=""):
    """One folder per member, one file per holdout source id."""
    for m in manifest["members"]:
        folder = translations / m["folder"]
        folder.mkdir(parents=True, exist_ok=True)
        for image_id, image in zip(manifest["testA"], images):
            path = folder / f"{image_id}{suffix}.{fmt}"
            if fmt == "npy":
                np.save(path, image.astype(np.float32))
            else:
                Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)


def test_export_holds_each_members_domains_and_a_manifest_that_checks_them(setting, exported):
    cfg, splits, test = setting
    out, manifest = exported
    train = splits["train"]
    assert len(manifest["members"]) == len(cfg.members)
    for member, m in zip(cfg.members, manifest["members"]):
        source, target = domain_indices(cfg, train, member.target_tumor_ratio, member.seed)
        assert m["trainA"] == export_lib.slice_ids(train, source)
        assert m["trainB"] == export_lib.slice_ids(train, target)
        assert m["trainB_tumor"] == round(member.target_tumor_ratio * cfg.n_target)
        first = np.load(out / m["folder"] / "trainB" / f"{m['trainB'][0]}.npy")
        np.testing.assert_array_equal(first, train.t1[target[0]])  # npy: lossless
        assert sorted(p.stem for p in (out / m["folder"] / "testA").iterdir()) == sorted(
            manifest["testA"])
    assert manifest["testA"] == export_lib.slice_ids(test, np.arange(len(test)))
    assert (manifest["source"], manifest["target"]) == ("flair", "t1")
    assert "tumor_mask" not in json.dumps(manifest)  # the holdout's masks stay with us
    export_lib.verify(out)
    with pytest.raises(UsageError, match="holds an export already"):
        export_lib.export_domains(cfg, out, splits)


def test_a_damaged_export_is_refused(setting, exported, tmp_path):
    import shutil

    out = shutil.copytree(exported[0], tmp_path / "copy")
    victim = next((out / exported[1]["members"][0]["folder"] / "testA").iterdir())
    victim.write_bytes(victim.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(UsageError, match=f"is damaged: .*{victim.name} is missing or differs"):
        export_lib.verify(out)


def test_png_export_costs_a_copy_almost_nothing_in_r(setting, tmp_path):
    cfg, splits, test = setting
    manifest = export_lib.export_domains(cfg, tmp_path / "png", splits, image_format="png")
    assert manifest["png_scale"] == 255
    folder = tmp_path / "png" / manifest["members"][0]["folder"] / "testA"
    read = np.stack([np.asarray(Image.open(folder / f"{i}.png"), np.float32) / 255
                     for i in manifest["testA"]])
    assert np.abs(read - test.flair).max() <= 1 / 510 + 1e-6
    r = quality.pearson_in_brain(read, test.flair, test.brain_mask)
    assert np.nanmean(r) > 0.9999


@pytest.mark.parametrize("fmt, suffix", [("npy", ""), ("png", "_fake_B")])
def test_the_three_fake_translators_get_their_known_verdicts(setting, exported, tmp_path, fmt,
                                                            suffix):
    cfg, splits, test = setting
    out, manifest = exported
    real, brain = test.t1, test.brain_mask
    painted = real.copy()
    for i in range(len(painted)):  # a black disc in every slice's brain
        rows, cols = np.nonzero(brain[i])
        cy, cx = rows.mean(), cols.mean()
        yy, xx = np.indices(real.shape[1:])
        painted[i][((yy - cy) ** 2 + (xx - cx) ** 2 <= 16) & (brain[i] > 0)] = 0.0
    fakes = {"copy": real, "blur": known_cases.blurred(real, brain, 6.0),
             "painter": painted}
    verdicts = {}
    for name, images in fakes.items():
        translations = tmp_path / name
        _write(translations, manifest, images, fmt, suffix)
        if fmt == "png":  # the other visuals junyanz's test script writes are passed over
            _write(translations, manifest, np.zeros_like(images), fmt, "_real_A")
        result = judge(out, translations, tmp_path / f"report_{name}", name=name,
                       classifier=DarkSpotJudge(), splits=splits, log=lambda *a: None)
        healthy = [r for r in result.rows if r["source_label"] == "healthy"]
        verdicts[name] = ({r["quality"] for r in healthy},
                          [r["frac_pred_tumor"] for r in healthy])
        assert (tmp_path / f"report_{name}" / "results.csv").exists()
    assert verdicts["copy"] == ({"ok"}, [0.0, 0.0])       # passes, adds nothing
    assert verdicts["blur"][0] == {"wrong_map"}          # fails the gate
    assert verdicts["painter"][1] == [1.0, 1.0]          # adds a tumor to every healthy source
    assert verdicts["painter"][0] == {"ok"}              # a small disc keeps the map


def test_judge_reproduces_evaluates_rows_for_our_own_translator(setting, exported, tmp_path):
    """The round trip: export, translate testA with our own trained generator, judge: the
    same rows as evaluating the run."""
    from jax_translate.jobs.run_folder import RunFolder
    from jax_translate.training.methods import Method
    from jax_translate.training.translate import translate_all

    cfg, splits, test = setting
    out, manifest = exported
    train_sweep(cfg, tmp_path / "run", splits, progress=False)
    ours = evaluate_run(tmp_path / "run", splits, DarkSpotJudge(), progress=False).rows
    states = RunFolder.existing(tmp_path / "run").restore_final(cfg)
    for m, member in enumerate(manifest["members"]):
        test_a = np.stack([np.load(out / member["folder"] / "testA" / f"{i}.npy")
                           for i in manifest["testA"]])
        translated = translate_all(Method(cfg), states.generator, test_a)[m]
        folder = tmp_path / "translations" / member["folder"]
        folder.mkdir(parents=True)
        np.savez(folder / "all.npz", **dict(zip(manifest["testA"], translated)))
    theirs = judge(out, tmp_path / "translations", tmp_path / "report", name="cyclegan",
                   classifier=DarkSpotJudge(), splits=splits, log=lambda *a: None).rows
    assert len(theirs) == len(ours)
    for a, b in zip(ours, theirs):
        for key, value in a.items():
            assert (value == b[key]) or (value != value and b[key] != b[key]), key


@pytest.mark.parametrize("damage, message", [
    ("missing", "2 of 16 translations are missing, first"),
    ("extra", r"1 file\(s\) name no holdout source, first zzz.npy"),
    ("size", "is 8x8; the holdout's images are 64x64"),
    ("range", r"spans \[-1, 0.\d+\]; translations are in \[0, 1\]"),
    ("colour", "is a colour image"),
    ("no_member", "no translations for ratio=1/seed=0"),
])
def test_bad_translations_are_one_line_and_nothing_is_written(setting, exported, tmp_path,
                                                              damage, message, capsys):
    cfg, splits, test = setting
    out, manifest = exported
    translations = tmp_path / "t"
    _write(translations, manifest, test.t1)
    folder = translations / manifest["members"][-1]["folder"]
    first = folder / f"{manifest['testA'][0]}.npy"
    if damage == "missing":
        first.unlink()
        (folder / f"{manifest['testA'][1]}.npy").unlink()
    elif damage == "extra":
        np.save(folder / "zzz.npy", test.t1[0])
    elif damage == "size":
        np.save(first, np.zeros((8, 8), np.float32))
    elif damage == "range":
        np.save(first, test.t1[0] * 2 - 1)
    elif damage == "colour":
        first.unlink()
        rgb = np.zeros((64, 64, 3), np.uint8)
        rgb[..., 0] = 200
        Image.fromarray(rgb).save(first.with_suffix(".png"))
    else:
        import shutil

        shutil.rmtree(folder)
    report = tmp_path / "report"
    code = cli.main(["judge", "--export", str(out), "--translations", str(translations),
                     "--out", str(report), "--data-dir", str(dataclasses.asdict(cfg)["data_dir"])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert __import__("re").search(message, err), err
    assert not report.exists()


def test_export_domains_cli_writes_png_folders(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "export"
    assert cli.main(["export-domains", "--preset", "tiny", "--ratios", "0.5", "--seeds", "1",
                     "--set", "n_source=12", "--set", "n_target=12", "--out", str(out),
                     "--data-dir", str(tiny_data_dir)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("exported 1 members (flair -> t1, 16 holdout sources, png)")
    folder = out / "ratio=0.5" / "seed=0"
    assert len(list((folder / "trainA").glob("*.png"))) == 12
    with Image.open(next((folder / "trainB").iterdir())) as image:
        assert image.mode == "L" and image.size == (64, 64)
