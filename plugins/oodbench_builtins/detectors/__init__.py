"""Built-in detectors, one module each, docstrings citing the paper and equation."""

from oodbench import hookimpl

from .fssd import FSSD
from .msp import MSP


@hookimpl
def oodbench_register_detectors():
    return [MSP, FSSD]
