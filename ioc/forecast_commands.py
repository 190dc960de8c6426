"""``ioc forecast run``: the forecast service with its anomaly events, as the demo runs it."""

from __future__ import annotations

import asyncio
import signal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from forecast import Calendar
from forecast._anomaly import AnomalySettings, AnomalyWatch
from forecast._service import forecast_service
from protocol import EVENT, VisionEvent
from store import close_pool, create_pool

from .runtime import infrastructure
from .settings import Settings


class ForecastSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOC_FORECAST_", extra="ignore", frozen=True)

    holidays: str = Field("VN", description="ISO country code of the public holidays")
    anomaly_hours: int = Field(
        2, ge=1, le=48, description="Hours outside the 95% band before an anomaly alert"
    )
    clear_hours: int = Field(1, ge=1, le=48, description="Hours back inside before it clears")


def run_forecast(settings: Settings) -> None:
    own = ForecastSettings()

    async def run() -> None:
        async with infrastructure(settings) as infra:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            pool = await create_pool(infra.store)
            try:
                async with infra.endpoint.client("forecast-1") as client:

                    async def publish(event: VisionEvent) -> None:
                        topic = infra.topics.events(event.camera_id)
                        await client.publish(topic, EVENT.encode(event), qos=1)

                    watch = AnomalyWatch(AnomalySettings(own.anomaly_hours, own.clear_hours))
                    async with forecast_service(pool, Calendar(own.holidays), (watch, publish)):
                        await stop.wait()
            finally:
                await close_pool(pool)

    asyncio.run(run())
