"""Synthetic head CT and limb radiograph studies with known ground truth.

The demo, the tests, the benchmarks and the training of the demo models draw their
images from here. Plain numpy and pydicom, no Django. Everything is a pure function
of ``seed`` and the options, so a seed names one case for ever.

- ``ct_head_volume_hu`` / ``radiograph_pixels``: arrays and truth only, for
  training (no DICOM overhead).
- ``make_ct_head_study`` / ``make_radiograph_study``: the same images as pydicom
  datasets with file meta, ready for ``write_study`` or a C-STORE.
"""

from demo.synthetic.dicom import (
    make_ct_head_study,
    make_radiograph_study,
    write_study,
)
from demo.synthetic.head_ct import ct_head_volume_hu
from demo.synthetic.radiograph import radiograph_pixels
from demo.synthetic.values import (
    CtHeadVolume,
    FracturePattern,
    FractureTruth,
    HemorrhageTruth,
    HemorrhageType,
    Photometric,
    Radiograph,
    RadiographBodyPart,
    RadiographModality,
    SyntheticStudy,
)

__all__ = [
    "CtHeadVolume",
    "FracturePattern",
    "FractureTruth",
    "HemorrhageTruth",
    "HemorrhageType",
    "Photometric",
    "Radiograph",
    "RadiographBodyPart",
    "RadiographModality",
    "SyntheticStudy",
    "ct_head_volume_hu",
    "make_ct_head_study",
    "make_radiograph_study",
    "radiograph_pixels",
    "write_study",
]
