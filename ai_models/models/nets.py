"""The network both models use, its checkpoint file and its heat maps.

A MONAI 2-D DenseNet, sized for the latency target on 2 CPU threads (FIELD-NOTES: a
DenseNet121 at 256² takes 230 ms a slice): 16 initial features, growth 12, three blocks of
three layers — about 40 k parameters, ~3 ms a 128² slice. Heat maps are MONAI's Grad-CAM on
the last dense block, upsampled to the input.

A checkpoint is one ``torch.save`` dict read back with ``weights_only=True`` (tensors and plain
values, nothing executed): the architecture, the labels, the input the model was trained on
and the state dict. The registry checks the file's sha256 before this module reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from monai.networks.nets.densenet import DenseNet
from monai.visualize.class_activation_maps import GradCAM

from ai_models.registry import RegistryEntry

CHECKPOINT_FORMAT: Final = "yunying-densenet/1"
DEFAULT_ARCH: Final[dict[str, Any]] = {
    "spatial_dims": 2,
    "in_channels": 1,
    "init_features": 16,
    "growth_rate": 12,
    "block_config": [3, 3, 3],
}
CAM_LAYER: Final = "class_layers.relu"


class CheckpointError(ValueError):
    """The weights file is not a checkpoint of this format, or not for this model."""


@dataclass(frozen=True)
class Checkpoint:
    net: DenseNet
    labels: tuple[str, ...]
    meta: dict[str, Any]


def build(labels: int, arch: dict[str, Any] | None = None) -> DenseNet:
    """A fresh network with one output (a logit) per label."""
    spec = dict(DEFAULT_ARCH if arch is None else arch)
    spec["block_config"] = tuple(spec["block_config"])
    return DenseNet(out_channels=labels, **spec)


def save(
    path: Path, net: DenseNet, labels: tuple[str, ...], meta: dict[str, Any], arch: dict[str, Any] | None = None
) -> None:
    """Write ``net`` with what it needs to be rebuilt; tensors made contiguous on the CPU so
    the file does not depend on where it was trained."""
    state = {key: value.detach().cpu().contiguous() for key, value in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "arch": dict(DEFAULT_ARCH if arch is None else arch),
            "labels": list(labels),
            "meta": meta,
            "state_dict": state,
        },
        path,
    )


def load(path: Path, expected_labels: tuple[str, ...]) -> Checkpoint:
    """Rebuild the network in ``path`` for inference. Raises ``CheckpointError`` when the file
    is not such a checkpoint or its labels differ from the registry's."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file is the same failure for the caller)
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    labels = tuple(raw["labels"])
    if labels != tuple(expected_labels):
        raise CheckpointError(f"{path} predicts {labels}, the registry entry lists {tuple(expected_labels)}")
    net = build(len(labels), raw["arch"])
    net.load_state_dict(raw["state_dict"])
    net.eval()
    return Checkpoint(net, labels, dict(raw.get("meta", {})))


class TrainedModel:
    """What the project's torch models share: the registry entry, and the checkpoint loaded
    for the labels the entry lists (``CheckpointError`` when the weights are another model's)."""

    def __init__(self, entry: RegistryEntry, weights: Path | None, labels: tuple[str, ...]) -> None:
        if weights is None:
            raise ValueError(f"model {entry.name} needs its weights file")
        self.entry = entry
        self.name = entry.name
        self.version = entry.version
        self.labels = labels
        self.checkpoint = load(weights, labels)


def probabilities(net: DenseNet, batch: torch.Tensor, chunk: int = 64) -> npt.NDArray[np.float32]:
    """Sigmoid outputs ``[N, labels]`` for a batch ``[N, 1, H, W]``, ``chunk`` images at a time
    (bounded memory for a 300-slice CT)."""
    out = [torch.sigmoid(net(batch[i : i + chunk])) for i in range(0, batch.shape[0], chunk)]
    result: npt.NDArray[np.float32] = torch.cat(out).detach().float().numpy()
    return result


def grad_cam(net: DenseNet, images: torch.Tensor, label: int) -> npt.NDArray[np.float32]:
    """Grad-CAM maps ``[N, H, W]`` in 0…1 of output ``label`` for ``images`` ``[N, 1, H, W]``.

    Runs with gradients even when called under ``torch.inference_mode()`` (the worker runs
    models that way): the images are copied out of inference mode first."""
    with torch.inference_mode(False), torch.enable_grad():
        x = images.clone()
        cam = GradCAM(nn_module=net, target_layers=CAM_LAYER)
        maps = cam(x, class_idx=label)
    result: npt.NDArray[np.float32] = maps[:, 0].detach().float().numpy()
    return np.nan_to_num(result, nan=0.0).clip(0.0, 1.0).astype(np.float32)


def upsample(heat: npt.NDArray[np.float32], shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """A heat map brought to an image's pixel grid (bilinear)."""
    tensor = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    resized = torch.nn.functional.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)
    result: npt.NDArray[np.float32] = resized[0, 0].clip(0.0, 1.0).numpy()
    return result


def hot_box(heat: npt.NDArray[np.float32], level: float = 0.5) -> tuple[int, int, int, int] | None:
    """The box (row0, col0, row1, col1; end exclusive) around the heat map's hottest region:
    the pixels at or above ``level`` of its maximum; ``None`` for a map without heat (Grad-CAM
    gives one when no region pushed the score up)."""
    peak = float(heat.max())
    if peak <= 0.0:
        return None
    rows, cols = np.nonzero(heat >= level * peak)
    return (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
