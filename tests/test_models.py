import copy

import pytest
import torch

from brainsegcli.models import count_parameters, create_model, get_spec, list_models
from brainsegcli.weights.checkpoint import CheckpointConfig, load_checkpoint, save_checkpoint


def test_registry_lists_the_cnn_families():
    assert {"unet", "sepres-unet", "attention-unet", "deepmrseg"} <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_no_nan(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, tiny=True).train()
    with torch.no_grad():  # zero-initialised by design (LoRA B, adapter up-projections): give them a value
        for p in model.parameters():
            if p.requires_grad and not p.any():
                p.normal_(0, 0.02)
    x = torch.rand(2, 5, 32, 32)
    if getattr(model, "accepts_prompts", False):  # exercise every prompt embedding too
        points = [(torch.tensor([[[5.0, 6.0], [20.0, 22.0]]]), torch.tensor([[0, 1]])), None]
        out = model(x, points=points, boxes=[None, torch.tensor([[4.0, 4.0, 20.0, 24.0]])])
    else:
        out = model(x)
    aux = []
    if isinstance(out, tuple):
        out, aux = out
    if isinstance(out, dict):
        aux = [out["edges"]]
        out = out["logits"]
    assert out.shape == (2, 4, 32, 32), out.shape
    assert torch.isfinite(out).all()
    loss = out.square().mean() + sum(a.square().mean() for a in aux)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"parameters without a finite gradient: {missing}"
    no_signal = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() == 0]
    assert not no_signal, f"parameters with an all-zero gradient: {no_signal}"


@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).family != "sam"])
def test_default_size_forward_shape(name):
    model = create_model(name, num_classes=13).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 5, 64, 64)).shape == (1, 13, 64, 64)
    total, trainable = count_parameters(model)
    assert total == trainable > 0


@pytest.mark.parametrize("name", list_models())
def test_state_dict_round_trip(name, tmp_path):
    torch.manual_seed(1)
    model = create_model(name, num_classes=4, tiny=True).eval()
    args = dict(get_spec(name).default_args)
    args.update(get_spec(name).tiny_args)
    save_checkpoint(tmp_path / name, model, CheckpointConfig(architecture=name, labelset="tissue", model_args=args))
    loaded, cfg = load_checkpoint(tmp_path / name)
    x = torch.rand(1, 5, 32, 32)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert cfg.architecture == name and cfg.labelset == "tissue"


def test_strict_loading_refuses_mismatched_weights(tmp_path):
    from brainsegcli.types import BrainsegError

    model = create_model("unet", num_classes=4, tiny=True)
    save_checkpoint(tmp_path / "c", model, CheckpointConfig(architecture="unet", labelset="tissue",
                                                            model_args={"features": [8, 16, 64]}))
    with pytest.raises(BrainsegError, match="do not match"):
        load_checkpoint(tmp_path / "c")


def _logits(out):
    if isinstance(out, tuple):
        out = out[0]
    return out["logits"] if isinstance(out, dict) else out


@pytest.mark.parametrize("name", list_models())
def test_folded_batchnorm_gives_the_same_output(name):
    """parcellate merges each batch norm into the convolution before it (inference.device.fold_batchnorm): the
    network must answer the same, with trained-looking (not default) running statistics and affines."""
    from brainsegcli.inference.device import fold_batchnorm, prepare_for_inference

    torch.manual_seed(2)
    model = create_model(name, num_classes=4, tiny=True).eval()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(create_model(name, num_classes=4, tiny=True).train())
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised by design (LoRA B, adapters, norm biases): give them a value
            if not p.any():
                p.normal_(0, 0.02)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.2, 3.0)
                m.weight.normal_(1, 0.3)
                m.bias.normal_(0, 0.3)
    x = torch.rand(2, 5, 32, 32)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.inference_mode():
        before = _logits(model(x))
        if norms:  # exact in float64 (LoRA-SAM has no norm to fold, and its prompt encoder runs in float32 only)
            folded64 = copy.deepcopy(model).double()
            fold_batchnorm(folded64)
            before64 = _logits(copy.deepcopy(model).double()(x.double()))
            assert torch.allclose(_logits(folded64(x.double())), before64, atol=1e-9, rtol=1e-9)
        prepare_for_inference(model, torch.device("cpu"))
        after = _logits(model(x.contiguous(memory_format=torch.channels_last)))
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    if get_spec(name).family != "sam":
        assert norms > 0 and left == 0, (norms, left)  # every CNN's norms follow a convolution
    elif name == "brainsegnet":
        assert left < norms, (norms, left)  # its decoder's conv-BN-ReLU blocks
    # float32 with channels-last kernels (parcellate used them before folding too; the fold itself is checked
    # exactly above): oneDNN's channels-last kernel for BrainSegNet's 9-channel refinement convolution alone is
    # 2e-5 off float64, against 1e-6 for the contiguous one
    tol = 1e-3 * (1 + float(before.abs().max()))
    assert torch.allclose(after, before, atol=tol, rtol=1e-3), ((after - before).abs().max(), tol)
