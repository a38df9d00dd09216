"""Opening a pump for a run, and saying in one line why it could not be opened.

Three different mistakes look alike to a driver (a timeout): nothing on the port, a pump of
another model, the right pump at another baud rate. An operator needs to know which, so when the
chosen driver finds no pump, each other model's driver is asked once, at its own factory line
settings, to identify what is there (`probe_port`). The probe sends only the drivers' own
opening and identification exchanges (status and version queries; a Masterflex is also put in
remote mode), never a rate, a volume or a start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from pumpctl.clock import Clock
from pumpctl.drivers.base import (
    ProtocolError,
    PumpConnectionError,
    PumpDriver,
    PumpError,
    PumpTimeout,
)
from pumpctl.drivers.registry import driver_class, open_transport
from pumpctl.drivers.transport import Transport
from pumpctl.log import get_logger
from pumpctl.operator.models import ModelInfo, model_info, pump_models
from pumpctl.simulator.url import is_sim_url, open_sim_transport, parse_sim_url

__all__ = [
    "ConnectFailure",
    "Found",
    "NoReply",
    "PortUnavailable",
    "PumpSetupFailed",
    "TransportFactory",
    "WrongPump",
    "connect",
    "probe_port",
]

TransportFactory = Callable[[str, int | None, str, Clock], Transport]
"""(port, baud rate or None for the model's, model, clock) -> a transport, not yet opened."""

#: a probe's reply timeout, wall seconds, without retries: it only asks "who is there?"
PROBE_TIMEOUT_S = 0.3

log = get_logger("pumpctl.operator.connect")


class ConnectFailure(Exception):
    """The run could not start on this port; the message says what, where, and what to try."""


class PortUnavailable(ConnectFailure):
    """The port could not be opened (no such device, busy, no permission)."""


class NoReply(ConnectFailure):
    """The port opened, and nothing on it answered any model's protocol."""


class WrongPump(ConnectFailure):
    """Something answered, but not as the chosen model at the chosen line settings."""


class PumpSetupFailed(ConnectFailure):
    """The pump answered but refused to be set up (rejected a command, reports an alarm)."""


async def _connect_sim(model: str, port: str, clock: Clock, address: int | None) -> PumpDriver:
    """`sim://MODEL?...`: the built-in emulation in this process, on the run's clock."""
    try:
        sim = parse_sim_url(port)
        transport = open_sim_transport(port, clock=clock)
    except ValueError as exc:
        raise PortUnavailable(str(exc)) from None
    if sim.model != model:
        raise WrongPump(f"{port} emulates {sim.model}: use --model {sim.model}")
    driver = driver_class(model)(transport, address=sim.address if address is None else address)
    await driver.open()
    return driver


def _serial(port: str, baudrate: int | None, model: str, clock: Clock) -> Transport:
    return open_transport(port, baudrate=baudrate, clock=clock, model=model)


@dataclass(frozen=True)
class Found:
    """What `probe_port` found answering: the model, its line settings, what it said it is."""

    info: ModelInfo
    identity: str

    def __str__(self) -> str:
        said = f" ({self.identity})" if self.identity else ""
        return f"{self.info.model}{said} at {self.info.line()}"


async def probe_port(
    port: str,
    clock: Clock,
    *,
    skip: tuple[str, int, int] | None = None,
    factory: TransportFactory | None = None,
) -> Found | None:
    """The first model whose driver opens a pump on `port` at its factory line settings and
    address, and hears it say what it is; `skip`: (model, baud rate, address) already tried.
    None: nobody answered."""
    factory = factory or _serial
    for info in pump_models():
        if skip == (info.model, info.baudrate, info.default_address):
            continue
        found = await _ask(info, port, clock, factory)
        if found is not None:
            return found
    return None


async def _ask(info: ModelInfo, port: str, clock: Clock, factory: TransportFactory) -> Found | None:
    """Does a pump of `info`'s model answer? Asked twice when the first answer was confused
    (the earlier probes' bytes may still sit in the pump's input), once when it was silence."""
    for attempt in (1, 2):
        transport = factory(port, info.baudrate, info.model, clock)
        driver = driver_class(info.model)(transport, address=info.default_address)
        driver.reply_timeout_s = PROBE_TIMEOUT_S
        driver.query_retries = 0
        try:
            async with driver:
                identity = await driver.identify()
        except PumpTimeout as exc:
            log.debug("probe.silent", port=port, model=info.model, error=str(exc))
            return None
        except PumpError as exc:
            log.debug(
                "probe.confused", port=port, model=info.model, attempt=attempt, error=str(exc)
            )
            continue
        if identity.model:  # an empty identity is a lenient parser, not a pump of this kind
            return Found(info, " ".join(filter(None, (identity.model, identity.firmware))))
        return None
    return None


def _os_reason(exc: BaseException) -> str:
    """The operating system's words for why a port did not open ("No such file or
    directory"), rather than pyserial's message repeating the path twice."""
    seen: BaseException | None = exc
    reason = str(exc)
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            reason = seen.strerror
        seen = seen.__cause__ or seen.__context__
    return reason


def _heard_bytes(exc: BaseException) -> bool:
    """Did the failure involve a reply that was received but could not be parsed?"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ProtocolError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def connect(
    model: str,
    port: str,
    clock: Clock,
    *,
    address: int | None = None,
    baudrate: int | None = None,
    factory: TransportFactory | None = None,
) -> PumpDriver:
    """An open driver for the `model` pump at `address` on `port`, or a `ConnectFailure`.

    `UnknownModel` (a usage error) when `model` is not a model at all. Log events meanwhile
    carry `stage=connect` (a console may leave the attempts to the one-line failure).
    """
    with structlog.contextvars.bound_contextvars(stage="connect"):
        return await _connect(model, port, clock, address, baudrate, factory)


async def _connect(
    model: str,
    port: str,
    clock: Clock,
    address: int | None,
    baudrate: int | None,
    factory: TransportFactory | None,
) -> PumpDriver:
    info = model_info(model)
    if is_sim_url(port) and factory is None:
        return await _connect_sim(model, port, clock, address)
    address = info.default_address if address is None else address
    line = info.line(baudrate)
    where = f"{port} at {line}, address {address}"
    transport = (factory or _serial)(port, baudrate, model, clock)
    driver = driver_class(model)(transport, address=address)
    try:
        await driver.open()
    except PumpConnectionError as exc:
        raise PortUnavailable(
            f"cannot open {port} at {line} ({_os_reason(exc)}): check the device path "
            "(`pumpctl ports` lists this machine's serial ports) and that no other program "
            "holds it"
        ) from exc
    except (PumpTimeout, ProtocolError) as exc:
        tried = (model, baudrate or info.baudrate, address)
        found = await probe_port(port, clock, skip=tried, factory=factory)
        if found is not None and found.info.model == model:
            a = found.info.default_address
            raise WrongPump(
                f"no {model} answered on {where}, but one answers at {found.info.line()}, "
                f"address {a}: use --baud {found.info.baudrate} --address {a}"
            ) from exc
        if found is not None:
            raise WrongPump(
                f"no {model} answered on {where}; the pump there answers as {found}: "
                f"use --model {found.info.model} (see `pumpctl models`)"
            ) from exc
        if _heard_bytes(exc):
            raise WrongPump(
                f"something answers on {where}, but not as a {model}: check --model and "
                "--baud (`pumpctl models` lists each model's line settings)"
            ) from exc
        raise NoReply(
            f"no reply on {where} ({model}): check the pump is switched on and cabled to "
            "this port, and its address and baud rate (`pumpctl models`)"
        ) from exc
    except PumpError as exc:
        raise PumpSetupFailed(f"the {model} on {where} refused to be opened: {exc}") from exc
    return driver
