"""The station's SiLA 2 server: every feature on one port, one lock for the whole station.

One server (rather than CETONI's one server per pump) so that one lock gives an orchestrator
exclusive control of the station; pump calls name their pump with StationService's PumpName
metadata. The server runs in sila2's threads; the station stays on its event loop.

Stopping: sila2's `stop()` waits for running observable commands, and those wait for their
runs, so stop the station's runs first (`Station.close`), and never call `stop()` on the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from sila2.features.lockcontroller import LockControllerFeature
from sila2.framework import Command, Feature, Property
from sila2.server import SilaServer

from pumpctl.log import get_logger
from pumpctl.station.sila.bridge import LoopBridge
from pumpctl.station.sila.context import PumpNameInterceptor, StationContext
from pumpctl.station.sila.core import (
    CancelControllerImpl,
    PauseControllerImpl,
    SimulationControllerImpl,
    StationServiceImpl,
)
from pumpctl.station.sila.dosing import (
    PumpFluidDosingServiceImpl,
    SyringeConfigurationControllerImpl,
)
from pumpctl.station.sila.features import feature
from pumpctl.station.sila.infusion import InfusionProgramServiceImpl
from pumpctl.station.sila.lock import StationLockController
from pumpctl.station.sila.tls import self_signed_certificate
from pumpctl.station.station import Station

__all__ = ["Endpoint", "StationServer", "protected_calls"]

SERVER_TYPE = "PumpctlStation"
VENDOR_URL = "https://example.org/pumpctl"  # SiLA wants a vendor URL; the project has none yet


def protected_calls() -> list[Feature | Command | Property]:
    """What needs the lock while the station is locked: every command except the stops."""
    infusion, dosing = feature("InfusionProgramService"), feature("PumpFluidDosingService")
    commands = (
        "RunProgram",
        "Pause",
        "Resume",
        "Titrate",
        "SetTarget",
        "Bolus",
        "ContainerChanged",
    )
    calls: list[Any] = [infusion[c] for c in commands]
    calls += [dosing[c] for c in ("DoseVolume", "GenerateFlow", "SetFillLevel")]
    calls.append(feature("SyringeConfigurationController")["SetSyringeParameters"])
    calls += [feature(f) for f in ("SimulationController", "CancelController", "PauseController")]
    return calls


@dataclass(frozen=True)
class Endpoint:
    """Where the server listens, and the certificate clients need (None: insecure)."""

    host: str
    port: int
    certificate_pem: bytes | None


class StationServer(SilaServer):
    """SiLAService (from sila2), LockController, StationService, InfusionProgramService,
    PumpFluidDosingService, SyringeConfigurationController, Simulation-, Cancel-, PauseController."""

    def __init__(self, station: Station, bridge: LoopBridge, *, server_uuid: UUID | None = None):
        from importlib.metadata import version

        workers = 100 + 8 * len(station.pumps)  # a thread per open subscription or running command
        super().__init__(
            server_name=station.spec.station[:255],
            server_type=SERVER_TYPE,
            server_description="pumpctl multi-pump station (lab and research software, "
            "not a medical device)",
            server_version=_sila_version(version("pumpctl")),
            server_vendor_url=VENDOR_URL,
            server_uuid=server_uuid or uuid4(),
            max_grpc_workers=workers,
            max_child_task_workers=workers,
        )
        self.log = get_logger("pumpctl.station.sila.server", station=station.spec.station)
        self.ctx = StationContext(station, bridge)
        self.bound_port: int | None = None
        self._capture_bound_port()
        impls: dict[str, type[Any]] = {
            "StationService": StationServiceImpl,
            "InfusionProgramService": InfusionProgramServiceImpl,
            "PumpFluidDosingService": PumpFluidDosingServiceImpl,
            "SyringeConfigurationController": SyringeConfigurationControllerImpl,
            "SimulationController": SimulationControllerImpl,
            "CancelController": CancelControllerImpl,
            "PauseController": PauseControllerImpl,
        }
        for name, cls in impls.items():
            self.set_feature_implementation(feature(name), cls(self, self.ctx))
        self.lock = StationLockController(self, protected_calls())
        self.set_feature_implementation(LockControllerFeature, self.lock)
        self.add_metadata_interceptor(PumpNameInterceptor(station))

    def _capture_bound_port(self) -> None:
        """sila2 drops the port gRPC bound; keep it, so port 0 (any free port) is usable."""
        for attr in ("add_insecure_port", "add_secure_port"):
            bind = getattr(self.grpc_server, attr)

            def bound(*args: Any, _bind: Any = bind, **kwargs: Any) -> int:
                self.bound_port = int(_bind(*args, **kwargs))
                return self.bound_port

            setattr(self.grpc_server, attr, bound)

    def serve(
        self,
        host: str,
        port: int,
        *,
        insecure: bool = False,
        discovery: bool = True,
        key_pem: bytes | None = None,
        cert_pem: bytes | None = None,
    ) -> Endpoint:
        """Start listening (returns at once). TLS unless `insecure`, with a self-signed
        certificate unless one is given; discovery as the standard recommends unless off."""
        if discovery and port == 0:
            raise ValueError("discovery would announce port 0: give a port, or no discovery")
        if insecure:
            self.start_insecure(host, port, enable_discovery=discovery)
            certificate = None
        else:
            if key_pem is None or cert_pem is None:
                key_pem, cert_pem = self_signed_certificate(self.server_uuid, host)
            self.start(
                host,
                port,
                private_key=key_pem,
                cert_chain=cert_pem,
                ca_for_discovery=cert_pem if discovery else None,
                enable_discovery=discovery,
            )
            certificate = cert_pem
        assert self.bound_port is not None
        self.log.info("sila.serving", host=host, port=self.bound_port, tls=not insecure)
        return Endpoint(host, self.bound_port, certificate)

    def shutdown(self) -> None:
        """Stop serving (blocks; not on the station's loop) and close sila2's mDNS socket,
        which its `stop()` leaves open."""
        self.stop(grace_period=1.0)
        broadcaster = getattr(self, "_SilaServer__service_broadcaster", None)
        zeroconf = getattr(broadcaster, "zc", None)
        close = getattr(zeroconf, "close", None)
        if callable(close):
            close()
        self.log.info("sila.stopped")


def _sila_version(version: str) -> str:
    """SiLA wants Major.Minor[.Patch][_Details]; a dev version's extra parts become details."""
    parts = version.replace("-", ".").split(".")
    numbers = [p for p in parts[:3] if p.isdigit()]
    rest = "".join(ch for ch in "_".join(parts[len(numbers) :]) if ch.isalnum() or ch == "_")
    core = ".".join([*numbers, "0", "0"][: max(2, len(numbers))])
    return f"{core}_{rest}" if rest else core
