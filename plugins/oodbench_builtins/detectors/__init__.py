"""Built-in detectors, one paper each, docstrings citing the paper and equation."""

from oodbench import hookimpl

from .abnormality import AbnormalityModule
from .activation_shaping import ASH, DICE, SCALE, ReAct
from .autoencoders import AE, LAMAE, AEPlus, LAMAEPlus, MemAE, MemAEPlus
from .dec_embedding import DECEmbedding, DECEmbeddingCentre
from .deep_ensemble import DeepEnsemble
from .fdbd import FDBD
from .fssd import FSSD
from .gradnorm import GradNorm
from .gram import Gram
from .knn import KNN
from .logit_based import GEN, Energy, Entropy, KLMatching, MaxLogit, TemperatureScaling
from .mahalanobis import Mahalanobis, RelativeMahalanobis
from .mcdropout import MCDropout
from .metric_learning import ODM, MetricLearning
from .msp import MSP
from .nnguide import NNGuide
from .odin import ODIN
from .openmax import OpenMax
from .outlier_exposure import OutlierExposure
from .she import SHE
from .vim import ViM


@hookimpl
def oodbench_register_detectors():
    return [
        MSP,
        FSSD,
        ODIN,
        Mahalanobis,
        MCDropout,
        DeepEnsemble,
        Energy,
        MaxLogit,
        Entropy,
        TemperatureScaling,
        KLMatching,
        GEN,
        KNN,
        ViM,
        ReAct,
        ASH,
        SCALE,
        DICE,
        RelativeMahalanobis,
        GradNorm,
        OpenMax,
        Gram,
        SHE,
        NNGuide,
        FDBD,
        AE,
        MemAE,
        LAMAE,
        AEPlus,
        MemAEPlus,
        LAMAEPlus,
        DECEmbedding,
        DECEmbeddingCentre,
        MetricLearning,
        ODM,
        OutlierExposure,
        AbnormalityModule,
    ]
