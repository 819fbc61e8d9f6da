import numpy as np
import pytest
import torch

from brainsegcli.inference.aggregate import ProbabilityAccumulator, normalise_weights
from brainsegcli.inference.predictor import InferenceConfig, predict_labels
from brainsegcli.inference.slicing import extract_stacks, from_view, iter_batches, nonempty_range, stack_indices, to_view
from brainsegcli.labels import get_labelset
from brainsegcli.types import Plane


def threshold_net(x: torch.Tensor) -> torch.Tensor:
    """Pointwise 'network' on the centre slice: 0 -> background, then CSF/GM/WM by intensity."""
    m = x[:, x.shape[1] // 2: x.shape[1] // 2 + 1]
    classes = [(m < 0.01), (m >= 0.01) & (m < 0.3), (m >= 0.3) & (m < 0.6), (m >= 0.6)]
    return torch.cat([c.float() for c in classes], dim=1) * 20


def test_stacks_are_edge_replicated():
    idx = stack_indices([0, 1, 5, 9], 5, 10)
    assert idx.tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [3, 4, 5, 6, 7], [7, 8, 9, 9, 9]]
    with pytest.raises(ValueError):
        stack_indices([0], 4, 10)
    vol = np.arange(4 * 3 * 2).reshape(4, 3, 2)
    st = extract_stacks(vol, [0], 5)
    assert st.shape == (1, 5, 3, 2) and np.array_equal(st[0, 2], vol[0]) and np.array_equal(st[0, 0], vol[0])


@pytest.mark.parametrize("plane", list(Plane))
def test_view_round_trip(plane):
    vol = np.random.default_rng(0).integers(0, 9, (6, 7, 8))
    assert np.array_equal(from_view(to_view(vol, plane), plane), vol)
    assert to_view(vol, plane).shape[0] == vol.shape[plane.axis]


def test_nonempty_range_and_batches():
    vol = np.zeros((20, 20, 20), np.uint8)
    vol[8:11, 5, 5] = 1
    assert nonempty_range(to_view(vol, Plane.SAGITTAL), 5) == (6, 13)
    centres = np.concatenate([c for c, _ in iter_batches(vol, Plane.SAGITTAL, 3)])
    assert centres.tolist() == list(range(6, 13))
    assert len(list(iter_batches(vol, Plane.SAGITTAL, 3, crop=False))) == 7


def _phantom_volume(size=64):
    vol = np.zeros((size, size, size), np.uint8)
    g = np.indices(vol.shape)
    r = np.sqrt(((g - size / 2) ** 2).sum(0))
    vol[r < 20] = 50
    vol[r < 16] = 120
    vol[r < 9] = 220
    return vol


def test_crop_gives_identical_labels_and_bounded_memory():
    vol = _phantom_volume()
    ls = get_labelset("tissue")
    full = predict_labels(vol, threshold_net, ls, InferenceConfig(crop=False))
    cropped = predict_labels(vol, threshold_net, ls, InferenceConfig(crop=True, batch_size=5))
    assert np.array_equal(full, cropped)
    assert set(np.unique(full)) == {0, 1, 2, 3}
    # with the pointwise network the labels are the thresholds of the image itself
    assert np.array_equal(full == 3, vol >= 0.6 * 255)


def test_inplane_window_holds_the_box_and_fits_the_network():
    from brainsegcli.inference.predictor import inplane_window

    box = (slice(40, 200), slice(3, 250), slice(100, 101))
    for plane in Plane:
        window = inplane_window(box, plane, (256, 256, 256), 16, margin=16)
        for ax, w in zip([i for i in range(3) if i != plane.axis], window):
            assert w.start >= 0 and w.stop <= 256 and (w.stop - w.start) % 16 == 0
            assert w.start <= box[ax].start - min(16, box[ax].start) and w.stop >= min(box[ax].stop + 16, 256)
    assert inplane_window(box, Plane.AXIAL, (256, 256, 256), 16) == (slice(24, 216), slice(77, 125))  # grown evenly
    assert inplane_window(box, Plane.CORONAL, (256, 256, 256), 16)[1] == slice(0, 256)  # capped at the grid


@pytest.mark.parametrize("tta", [False, True])
def test_network_with_a_divisor_runs_on_the_head_only_with_identical_labels(tta):
    """A network that declares ``divisor`` gets in-plane windows around the head (multiples of it);
    with a pointwise network the labels are exactly those of the full grid."""
    sizes = []

    class Windowed(torch.nn.Module):
        divisor = 8

        def forward(self, x):
            sizes.append(tuple(x.shape[-2:]))
            return threshold_net(x)

    vol = np.zeros((96, 96, 96), np.uint8)
    vol[24:72, 24:72, 24:72] = _phantom_volume(48)
    ls = get_labelset("tissue")
    full = predict_labels(vol, threshold_net, ls, InferenceConfig(crop=False, flip_tta=tta))
    windowed = predict_labels(vol, Windowed(), ls, InferenceConfig(flip_tta=tta))
    assert np.array_equal(full, windowed) and set(np.unique(full)) == {0, 1, 2, 3}
    assert sizes and all(h % 8 == 0 and w % 8 == 0 and h < 96 and w < 96 for h, w in sizes)
    sizes.clear()
    predict_labels(vol, Windowed(), ls, InferenceConfig(crop=False))  # --no-crop: the whole grid
    assert sizes and set(sizes) == {(96, 96)}


def test_memory_bound_switches_to_float16():
    acc = ProbabilityAccumulator((64, 64, 64), 96, max_bytes=64**3 * 96 * 4 - 1)
    assert acc.dtype == np.float16 and acc.nbytes == 64**3 * 96 * 2
    acc = ProbabilityAccumulator((64, 64, 64), 4)
    assert acc.dtype == np.float32


def test_view_weights():
    w = normalise_weights([Plane.CORONAL, Plane.AXIAL, Plane.SAGITTAL])
    assert w[Plane.CORONAL] == pytest.approx(0.4) and w[Plane.SAGITTAL] == pytest.approx(0.2)
    assert normalise_weights([Plane.AXIAL]) == {Plane.AXIAL: 1.0}


LEFT_BLOB = np.s_[40:48, 10:18, 28:36]   # axis 0 grows towards the left: a left blob (superior half)
RIGHT_BLOB = np.s_[16:24, 10:18, 28:36]


def _two_blobs_and_a_side_aware_net():
    """A blob in each hemisphere, and a network that labels bright voxels Left-/Right-Thalamus by the
    first in-plane axis: the left-right axis in coronal/axial stacks (so it tells the side there);
    in sagittal stacks that axis is inferior-superior, so there it always answers 'right'."""
    ls = get_labelset("subcortical")
    lt, rt = ls.index_of(10), ls.index_of(49)  # Left-/Right-Thalamus
    vol = np.zeros((64, 64, 64), np.uint8)
    vol[LEFT_BLOB] = 200
    vol[RIGHT_BLOB] = 200

    def net(x):
        b, _, h, w = x.shape
        logits = torch.zeros(b, ls.num_classes, h, w)
        on = x[:, 2] > 0
        left = (torch.arange(h).view(1, h, 1) >= h // 2).expand(b, h, w)
        logits[:, 0], logits[:, lt], logits[:, rt] = 10 * (~on), 10 * (on & left), 10 * (on & ~left)
        return logits

    return ls, lt, rt, vol, net


def test_sagittal_left_right_merge_lets_the_other_views_decide_the_side():
    """With the merge rule the side comes from the coronal/axial views even when the sagittal view
    (which cannot tell the side) carries most of the weight; without it the left blob comes out wrong."""
    ls, lt, rt, vol, net = _two_blobs_and_a_side_aware_net()
    weights = {Plane.CORONAL: 0.2, Plane.AXIAL: 0.2, Plane.SAGITTAL: 0.6}
    merged = predict_labels(vol, net, ls, InferenceConfig(view_weights=weights))
    assert (merged[LEFT_BLOB] == lt).all() and (merged[RIGHT_BLOB] == rt).all()
    naive = predict_labels(vol, net, ls, InferenceConfig(view_weights=weights, sagittal_lr_merge=False))
    assert (naive[LEFT_BLOB] == rt).all()


def test_flip_tta_keeps_a_side_aware_network_right():
    """The mirrored image's answer must be mirrored back *and* have its left/right classes swapped;
    for a network that reads the side from the in-plane position, TTA then changes nothing (a missing
    swap would average left with right)."""
    ls, lt, rt, vol, net = _two_blobs_and_a_side_aware_net()
    plain = predict_labels(vol, net, ls, InferenceConfig())
    tta = predict_labels(vol, net, ls, InferenceConfig(flip_tta=True))
    assert (tta[LEFT_BLOB] == lt).all() and (tta[RIGHT_BLOB] == rt).all()
    assert np.array_equal(plain, tta)


def test_flip_tta_makes_any_network_mirror_equivariant():
    """With TTA, the fused probabilities of the mirrored image are the mirrored, side-swapped
    probabilities of the image (up to rounding: a convolution of a flipped input sums in another
    order), whatever the network; without TTA a random network is far from that."""
    from brainsegcli.inference.predictor import predict_probabilities
    from brainsegcli.models import create_model

    ls = get_labelset("subcortical")
    torch.manual_seed(0)
    model = create_model("unet", num_classes=ls.num_classes, tiny=True).eval()
    rng = np.random.default_rng(0)
    vol = _phantom_volume(32)
    vol[4:14, 8:20, 10:22] = rng.integers(0, 255, (10, 12, 12), dtype=np.uint8)  # an asymmetric patch
    swap = torch.as_tensor(ls.lr_swap_index)
    for tta in (True, False):
        cfg = InferenceConfig(flip_tta=tta, batch_size=5)
        a = predict_probabilities(vol, model, ls, cfg).acc
        b = predict_probabilities(np.ascontiguousarray(vol[::-1]), model, ls, cfg).acc
        err = (a.flip(0)[..., swap] - b).abs().max().item()
        assert (err < 1e-4) == tta, (tta, err)


def test_flip_tta_refuses_prompted_networks():
    class Prompted(torch.nn.Module):
        wants_slice_info = True

    with pytest.raises(ValueError, match="prompts"):
        predict_labels(_phantom_volume(16), Prompted(), get_labelset("tissue"), InferenceConfig(flip_tta=True))


def test_real_model_runs_batched_and_deterministic():
    from brainsegcli.models import create_model

    torch.manual_seed(0)
    model = create_model("unet", num_classes=4, tiny=True).eval()
    vol = _phantom_volume(32)
    cfg = InferenceConfig(batch_size=7)
    a = predict_labels(vol, model, get_labelset("tissue"), cfg)
    b = predict_labels(vol, model, get_labelset("tissue"), InferenceConfig(batch_size=3))
    assert a.shape == vol.shape and np.array_equal(a, b)


@pytest.mark.parametrize("channels_last", [True, False])
def test_class_softmax_of_either_memory_layout(channels_last):
    """The engine's softmax over the classes takes a faster path for channels-last logits (CPU): same numbers."""
    from brainsegcli.inference.predictor import _run

    logits = torch.randn(3, 33, 16, 24) * 4
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    probs = _run(lambda x: logits, torch.zeros(3, 5, 16, 24), Plane.AXIAL, np.arange(3), InferenceConfig())
    assert probs.shape == logits.shape
    assert torch.allclose(probs, torch.softmax(logits.contiguous(), dim=1), atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(3, 16, 24), atol=1e-5)
