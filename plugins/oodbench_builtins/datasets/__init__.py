"""Built-in datasets: torchvision's classics (read from their official files), image folders,
the synthetic sets of SPEC.md, and folders declared by name in a config file."""

from oodbench import hookimpl

from .config import config_datasets
from .folder import FolderDataset, FolderPrefix
from .official import CIFAR10, CIFAR100, KMNIST, MNIST, SVHN, FashionMNIST, NotMNIST, Omniglot
from .synthetic import Constant, Gaussian, GreyscaleDerived, PerturbedID, Uniform


@hookimpl
def oodbench_register_datasets():
    return [
        MNIST(),
        FashionMNIST(),
        KMNIST(),
        NotMNIST(),
        Omniglot(),
        CIFAR10(),
        CIFAR100(),
        SVHN(),
        FolderDataset(
            "cifar10-jpeg",
            "cifar10-jpeg",
            "CIFAR-10 as lossy JPEG (quality 75) image folder; never the official cifar10",
        ),
        FolderDataset(
            "tinyimagenet-r32",
            "tinyimagenet-r32",
            "Tiny ImageNet test images resized to 32×32 (ODIN's TinyImageNet-resize population); OOD only",
        ),
        FolderDataset("dtd-subset32", "dtd-subset32", "10 of 47 DTD texture classes at 32×32; OOD only"),
        GreyscaleDerived("cifar10bw", "cifar10", "CIFAR-10 test, greyscale, 28×28 (papers 000, 004)"),
        GreyscaleDerived(
            "cifar10-jpeg-bw", "cifar10-jpeg", "cifar10-jpeg test, greyscale, 28×28 (stand-in for cifar10bw)"
        ),
        Gaussian(),
        Uniform(),
        Constant(),
        PerturbedID(),
        FolderPrefix(),
        *config_datasets(),
    ]
