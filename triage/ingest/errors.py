"""Why an instance was refused, with the DICOM status a sender understands.

Messages never quote attribute values: they may be PHI.
"""

from __future__ import annotations


class IngestError(Exception):
    """An instance was not stored. ``status`` is the DICOM failure status."""

    status: int = 0xC000
    #: Transient errors ask the sender to retry; permanent ones will fail again.
    transient: bool = False


class NotDicom(IngestError):
    """The bytes are not a DICOM Part 10 stream."""


class TruncatedInstance(IngestError):
    """The stream ends before its last element does."""


class MissingAttribute(IngestError):
    """A required attribute (a UID, the SOP class) is missing or empty."""

    status = 0xA900  # Data set does not match SOP class


class InvalidUid(IngestError):
    """A UID breaks the DICOM UID grammar (and could be a path trick)."""

    status = 0xA900


class InvalidValue(IngestError):
    """An attribute's value breaks its meaning (a rescale slope that is NaN)."""

    status = 0xA900


class UnrecordableInstance(IngestError):
    """The database refused a value of the instance: sending it again cannot help.

    Known cases are normalised or refused while the header is read; this is
    the net under them (the database's own data and constraint checks).
    """

    status = 0xC000  # Cannot understand


class UnsupportedSopClass(IngestError):
    """The SOP class is not a storage SOP class."""

    status = 0x0122  # SOP class not supported


class UnsupportedTransferSyntax(IngestError):
    """The transfer syntax is one RadTriage cannot decode."""

    status = 0xC122  # Referenced transfer syntax not supported (PS3.18)


class InstanceTooLarge(IngestError):
    """The instance is larger than RADTRIAGE_MAX_INSTANCE_MB."""

    status = 0xC001


class StudyMismatch(IngestError):
    """A STOW-RS instance belongs to another study than the request's URL."""

    status = 0xA900


class UidConflict(IngestError):
    """A UID reappeared under another parent (series, study or patient)."""

    status = 0xA900


class StorageUnavailable(IngestError):
    """Disk or database failed; nothing was recorded and the sender should retry."""

    status = 0xA700  # Out of resources
    transient = True


class OutOfMemory(IngestError):
    """The server ran out of memory handling the instance: not the sender's
    fault, so not refused for good; the sender should retry later."""

    status = 0xA700  # Out of resources
    transient = True
