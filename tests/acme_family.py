"""A third-party family as another package would register it (entry point `pumpctl.families`):
here an NE-1000 clone at 9600 baud whose pumps leave the factory at address 3."""

from __future__ import annotations

import dataclasses

from pumpctl.families import Addresses, LineSettings
from pumpctl.families.newera import SPEC as NE_SPEC

SPEC = dataclasses.replace(
    NE_SPEC,
    model="acme-ne",
    name="Acme NE clone",
    title="Acme NE-1000 clone",
    line=LineSettings(baud=9600),
    addresses=Addresses(first=0, last=99, default=3),
)

NOT_A_SPEC = object()
