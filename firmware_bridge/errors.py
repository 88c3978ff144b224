"""Errors of the firmware bridge: every one is a ``PxbyError``, so ``pxby-edge`` prints it on one line.

    python -c "from firmware_bridge.errors import LinkTimeout; print(LinkTimeout.__mro__)"

Bad bytes on the wire are *not* errors: the decoder returns them as values with a reason and the
link counts them. These exceptions are for what the caller must act on (wrong port, silent
device, incompatible firmware, a request the device cannot hold).
"""

from __future__ import annotations

from pxby_edge.errors import PxbyError


class BridgeError(PxbyError):
    """Base of the firmware bridge's errors."""


class FrameError(BridgeError):
    """A message that cannot be encoded (payload too long, field out of range)."""


class LinkError(BridgeError):
    """The link cannot carry on (device keeps refusing, transport closed)."""


class LinkTimeout(LinkError):  # noqa: N818 (the name the design uses)
    """The device did not answer in time; the message names the port and baud."""


class PortError(LinkError):
    """The port cannot be opened: it does not exist, or another program holds it."""


class ProtocolVersionError(LinkError):
    """Host and device share no protocol version."""


class CapabilityError(LinkError):
    """The device is too small for what was asked (screen, tile slots, audio rate or buffers)."""


class FirmwareSourcesMissing(BridgeError):  # noqa: N818 (says what is wrong)
    """The C firmware sources (to build, check vectors or run the differential test) are not installed."""


class FirmwareBuildError(BridgeError):
    """The C firmware core could not be built here (no gcc or make, or the compiler failed)."""
