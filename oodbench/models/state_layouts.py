"""Checkpoints written by other tools, mapped onto oodbench's built-in architectures (``--checkpoint``).

- **oodbench's own** (``oodbench train``, ``torch.save(backbone.state_dict())``): keys ``net.…`` plus the
  normalisation buffers ``mean``/``std`` — loaded as they are.
- **A bare network state dict** (``torch.save(net.state_dict())``, the torchvision/timm convention): keys without
  ``net.``; loaded into the backbone's network, its normalisation kept.
- **OpenOOD v1.5** (``openood/recorders/base_recorder.py`` saves ``net.state_dict()`` bare, without the
  DataParallel ``module.`` prefix since April 2023): ``ResNet18_32x32`` (CIFAR-10/100) names each block's
  projection ``shortcut.0``/``shortcut.1`` where torchvision says ``downsample.0``/``downsample.1``; every other
  key and every shape equals oodbench's ``resnet18`` (torchvision's ResNet-18 with a 3×3 stride-1 stem and no
  max-pool). ``ResNet18_224x224`` (ImageNet-200) subclasses torchvision's ResNet and matches
  ``torchvision:resnet18`` key for key. A ``module.`` prefix (older multi-GPU checkpoints) is stripped.

OpenOOD's networks normalise outside the model, with the dataset's mean and std: oodbench's built-in
``resnet18`` applies the CIFAR statistics itself, as OpenOOD's CIFAR preprocessing does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

#: (their name, torchvision's name) for key fragments that differ
RENAMES = ((".shortcut.", ".downsample."),)


def adapt(state: Mapping[str, torch.Tensor], wanted: Mapping[str, torch.Tensor]) -> tuple[dict, str]:
    """``state`` rewritten to the keys of ``wanted`` (a backbone's own state dict) when it is one of the layouts
    above; returns (state, what was done — "" when nothing was)."""
    state, notes = dict(state), []
    if state and all(k.startswith("module.") for k in state):
        state, notes = {k[len("module.") :]: v for k, v in state.items()}, ["stripped 'module.'"]
    if set(state) == set(wanted):
        return state, "; ".join(notes)
    for theirs, ours in RENAMES:
        if any(theirs in k for k in state) and not any(theirs in k for k in wanted):
            state = {k.replace(theirs, ours): v for k, v in state.items()}
            notes.append(f"renamed {theirs.strip('.')!r} to {ours.strip('.')!r} (OpenOOD's ResNet layout)")
    if not any(k.startswith("net.") for k in state) and any(k.startswith("net.") for k in wanted):
        own = {k: v for k, v in wanted.items() if not k.startswith("net.")}  # the backbone's normalisation
        state = {**own, **{f"net.{k}": v for k, v in state.items()}}
        notes.append("a network state dict: loaded into the backbone's network, its normalisation kept")
    return state, "; ".join(notes)
