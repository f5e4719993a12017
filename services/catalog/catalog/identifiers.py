"""French identifiers a member is registered with: SIRET and the commune's INSEE code."""

from __future__ import annotations

import re

# La Poste's establishments share one SIREN and do not follow the Luhn rule: the digits of
# their SIRET add up to a multiple of 5 instead (INSEE's published exception).
_LA_POSTE_SIREN = "356000000"
_INSEE_COMMUNE = re.compile(r"^(?:[0-9]{2}|2A|2B)[0-9]{3}$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def normalise_siret(value: str) -> str:
    """Return the SIRET without spaces; raise ValueError when it is not a valid one."""
    siret = re.sub(r"[\s.]", "", value)
    if not re.fullmatch(r"[0-9]{14}", siret):
        raise ValueError("a SIRET has 14 digits")
    if siret.startswith(_LA_POSTE_SIREN) and siret != _LA_POSTE_SIREN + "00000":
        if sum(int(c) for c in siret) % 5 != 0:
            raise ValueError("the SIRET's check digit is wrong")
    elif not luhn_valid(siret[:9]) or not luhn_valid(siret):
        raise ValueError("the SIRET's check digit is wrong")
    return siret


def check_insee_code(value: str) -> str:
    """A commune's INSEE code: 5 characters, 2A/2B for Corsica (not a postal code)."""
    code = value.strip().upper()
    if not _INSEE_COMMUNE.fullmatch(code):
        raise ValueError("an INSEE commune code is 5 characters: 2 digits (or 2A/2B) and 3 digits")
    return code
