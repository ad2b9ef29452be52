"""The synthetic slices that tests, benchmarks and the GPU dry run share."""

import numpy as np

from jax_translate.data import synthetic


def test_synthetic_slices_have_their_tumors_where_the_labels_say():
    s = synthetic.ellipse_slices(n_patients=3, per_patient=4, size=(24, 16), seed=2,
                                 first_patient=10)
    assert s.flair.shape == (12, 24, 16) and s.flair.dtype == np.float32
    assert list(np.unique(s.patient_id)) == [10, 11, 12]
    has_tumor = s.tumor_mask.reshape(12, -1).any(1)
    assert np.array_equal(has_tumor, s.label.astype(bool))
    assert not (s.tumor_mask & (1 - s.brain_mask)).any()  # inside the brain
    lesion, tissue = s.tumor_mask > 0, (s.brain_mask > 0) & (s.tumor_mask == 0)
    assert s.flair[lesion].mean() > s.flair[tissue].mean() + 0.2   # bright in Flair
    assert s.t1[lesion].mean() < s.t1[tissue].mean() - 0.2         # dark in T1
    again = synthetic.ellipse_slices(n_patients=3, per_patient=4, size=(24, 16), seed=2,
                                     first_patient=10)
    assert np.array_equal(again.t1, s.t1)
