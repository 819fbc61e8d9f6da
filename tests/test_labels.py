import numpy as np
import pytest

from brainsegcli.labels import (LABELSET_NAMES, get_labelset, ids_to_indices, indices_to_ids, map_labels)
from brainsegcli.types import BrainsegError


def test_labelset_sizes_and_members():
    assert get_labelset("tissue").ids == (0, 1, 2, 3)
    sub = get_labelset("subcortical")
    assert sub.num_classes == 13 and set(sub.ids) == {0, 10, 49, 11, 50, 12, 51, 13, 52, 17, 53, 18, 54}
    aseg = get_labelset("aseg")
    assert aseg.num_classes == 33 and {3, 42, 24} <= set(aseg.ids)
    dkt = get_labelset("dkt95")
    assert dkt.num_classes == 96  # 95 regions + background
    assert {3, 42, 1001, 1004, 1032, 1033, 2001}.isdisjoint(dkt.ids)
    assert {31, 63, 77, 1002, 1035, 2002, 2035} <= set(dkt.ids)
    for name in LABELSET_NAMES:
        ls = get_labelset(name)
        assert len(set(ls.ids)) == ls.num_classes and ls.ids[0] == 0
        assert len(ls.names) == len(ls.colors) == ls.num_classes


def test_lr_pairs_and_swap():
    sub = get_labelset("subcortical")
    assert len(sub.lr_pairs) == 6
    names = sub.names
    for left, right in sub.lr_pairs:
        assert names[left].replace("Left-", "") == names[right].replace("Right-", "")
    perm = sub.lr_swap_index
    assert np.array_equal(perm[perm], np.arange(sub.num_classes))
    assert get_labelset("dkt95").lr_pairs and len(get_labelset("dkt95").lr_pairs) == 45
    assert get_labelset("tissue").lr_pairs == ()
    merged = sub.sagittal_index
    for left, right in sub.lr_pairs:
        assert merged[left] == merged[right] == left


def test_unknown_labelset():
    with pytest.raises(BrainsegError, match="unknown label set"):
        get_labelset("nope")


def test_tissue_mapping_rules():
    arr = np.array([0, 2, 3, 4, 24, 10, 1028, 2035, 16, 77, 85, 7, 8, 15, 31])
    out, unknown = map_labels(arr.reshape(-1, 1, 1), get_labelset("tissue"))
    expect = [0, 3, 2, 1, 1, 2, 2, 2, 3, 3, 3, 3, 2, 1, 1]
    assert out.ravel().tolist() == expect and unknown == []


def test_aseg_mapping_merges_parcels_and_fills_small_structures():
    arr = np.full((5, 1, 1), 2)
    arr[0] = 1028    # lh cortex parcel -> 3
    arr[4] = 2030    # rh cortex parcel -> 42
    arr[2] = 77      # WM hypointensity -> filled from neighbours (2)
    out, _ = map_labels(arr, get_labelset("aseg"))
    assert out.ravel().tolist() == [3, 2, 2, 2, 42]


def test_synthseg_convention_relabels_ventricle_parts_and_drops_extracerebral():
    arr = np.array([[[136, 163, 507, 2, 530]]])
    out, unknown = map_labels(arr, get_labelset("aseg"))
    assert out.ravel().tolist() == [4, 43, 0, 2, 0] and unknown == []


def test_dkt_needs_parcellated_cortex():
    with pytest.raises(BrainsegError, match="unparcellated cortex"):
        map_labels(np.array([[[3, 2]]]), get_labelset("dkt95"))


def test_id_index_round_trip():
    ls = get_labelset("dkt95")
    ids = np.array(ls.ids)
    assert np.array_equal(indices_to_ids(ids_to_indices(ids, ls), ls), ids)
    with pytest.raises(BrainsegError):
        ids_to_indices(np.array([3]), ls)


def test_real_synthseg_map(synthseg_dir):
    import nibabel as nib

    arr = np.asarray(nib.load(synthseg_dir / "training_seg_01.nii.gz").dataobj)
    for name in ("tissue", "subcortical", "aseg"):
        ls = get_labelset(name)
        out, unknown = map_labels(arr, ls)
        assert unknown == []
        assert set(np.unique(out)) == set(ls.ids)  # every structure present, nothing invented
