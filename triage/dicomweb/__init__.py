"""DICOMweb: STOW-RS (store) and QIDO-RS (search) over HTTP."""
