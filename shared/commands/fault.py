"""The ``fault`` control command: ``inject`` under its other name (:class:`Fault`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.inject import Inject


class Fault(Inject, tag="fault", frozen=True):
    """The same as ``inject`` (older scripts say ``fault``): the same arguments, the same answer."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
