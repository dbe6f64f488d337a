"""Built-in backbones: LeNet (28×28), CIFAR-stem ResNet-18/34 (32×32), ``timm:NAME``, ``torchvision:NAME``."""

from oodbench import hookimpl

from .cifar_resnet import ResNet18, ResNet34
from .lenet import LeNetFactory
from .timm_models import TimmPrefix
from .torchvision_models import TorchvisionPrefix


@hookimpl
def oodbench_register_backbones():
    return [LeNetFactory(), ResNet18(), ResNet34(), TimmPrefix(), TorchvisionPrefix()]
