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
