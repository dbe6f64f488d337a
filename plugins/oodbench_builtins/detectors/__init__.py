"""Built-in detectors, one paper each, docstrings citing the paper and equation."""

from oodbench import hookimpl

from .abnormality import AbnormalityModule
from .activation_shaping import ASH, DICE, SCALE, ReAct
from .adascale import AdaScale
from .autoencoders import AE, LAMAE, AEPlus, LAMAEPlus, MemAE, MemAEPlus
from .conf_branch import ConfBranch
from .dec_embedding import DECEmbedding, DECEmbeddingCentre
from .deep_ensemble import DeepEnsemble
from .fdbd import FDBD
from .fssd import FSSD
from .gmm import GMM
from .godin import GODIN
from .gradnorm import GradNorm
from .graduncertainty import GradUncertainty
from .gram import Gram
from .knn import KNN
from .logit_based import GEN, Energy, Entropy, KLMatching, MaxLogit, TemperatureScaling
from .logitnorm import LogitNorm
from .lts import LTS
from .mahalanobis import Mahalanobis, RelativeMahalanobis
from .mcdropout import MCDropout
from .metric_learning import ODM, MetricLearning
from .msp import MSP
from .nac import NACUE
from .nci import NCI
from .nnguide import NNGuide
from .odin import ODIN
from .openmax import OpenMax
from .outlier_exposure import OutlierExposure
from .pnml import PNML
from .rankfeat import RankFeat
from .relation import Relation
from .residual import Residual
from .rotpred import RotPred
from .she import SHE
from .vim import ViM
from .vos import VOS
from .vra import VRA
from .webo import WeightedEBO


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
        Residual,
        Relation,
        AdaScale,
        LogitNorm,
        ConfBranch,
        RotPred,
        NACUE,
        GMM,
        WeightedEBO,
        VRA,
        LTS,
        RankFeat,
        NCI,
        GradUncertainty,
        PNML,
        GODIN,
        VOS,
    ]
