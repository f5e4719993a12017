"""Demo data for ``ptce dev``: loaded once, idempotently (later issues add members and offers)."""

from __future__ import annotations

from sqlmodel import select

from catalog.models import Pole
from catalog.poles import RegisterPole, register_pole
from catalog.service import DEFINITION
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings

DEMO_POLE_NAME = "Pôle Coopératif du Val de Loire (démo)"


async def load_demo(settings: ServiceSettings) -> None:
    runtime = ServiceRuntime(DEFINITION, settings)
    try:
        async with runtime.session_factory() as session:
            existing = await session.scalar(select(Pole).where(Pole.name == DEMO_POLE_NAME))
        if existing is None:
            pole = await register_pole(runtime.uow(), RegisterPole(name=DEMO_POLE_NAME))
            print(f"[ptce dev] demo pole created: {pole.name} ({pole.id})", flush=True)
        else:
            print(f"[ptce dev] demo pole present: {existing.name} ({existing.id})", flush=True)
    finally:
        await runtime.stop()
