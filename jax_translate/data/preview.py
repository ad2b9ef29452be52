"""A picture of the dataset: every modality it holds, its tissue maps (where it has
them) and the tumor mask of healthy and tumor slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jax_translate.data.dataset import SliceSet
from jax_translate.data.slices import HEALTHY, TISSUE_SHARES, TUMOR
from jax_translate.images import MODALITY_NAMES


def pick_examples(slices: SliceSet, per_label: int = 3, seed: int = 0) -> np.ndarray:
    """Indices of up to ``per_label`` healthy then tumor slices, from different patients
    where possible (tumor slices: the ones with the largest tumor)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in (HEALTHY, TUMOR):
        index = np.flatnonzero(slices.label == label)
        if label == TUMOR:
            area = slices.tumor_mask[index].reshape(len(index), -1).sum(1)
            index = index[np.argsort(-area, kind="stable")]
        else:
            index = rng.permutation(index)
        seen = set()
        for i in index:
            if slices.patient_id[i] not in seen:
                seen.add(slices.patient_id[i])
                chosen.append(i)
            if len(seen) == per_label:
                break
    return np.asarray(chosen, np.int64)


def save_preview(slices: SliceSet, out: Path, per_label: int = 3) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = pick_examples(slices, per_label)
    columns = [(MODALITY_NAMES[m], slices.image(m)) for m in slices.modalities]
    if slices.has_tissue:  # each pixel's share of a tissue, 0 black to 1 white
        columns += [(f"{name.upper()} share", slices.tissue_share(name)) for name in TISSUE_SHARES]
    columns.append(("tumor mask", slices.tumor_mask))
    fig, axes = plt.subplots(len(index), len(columns), figsize=(2 * len(columns), 2.1 * len(index)),
                             squeeze=False)
    for row, i in enumerate(index):
        for col, (title, images) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
        name = "tumor" if slices.label[i] == TUMOR else "healthy"
        axes[row, 0].set_ylabel(f"{name}\np{slices.patient_id[i]} z{slices.slice_index[i]}",
                                fontsize=8)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)  # atomic: a half-written figure never replaces a good one
    return out
