"""The station file: which pumps one `pumpctl serve` process supervises, and where they are.

A station names its pumps; each has a model, a port (device path, pyserial URL or `sim://MODEL`
for the family's in-process emulation), an address on that port, its own journal and, optionally,
a program started when the station starts and a container for plain (volumetric) dosing. Every
error names the field it is about (`pumps.left.model: ...`), like the program file's.

Paths: `program` and `programs` are relative to the station file (like a program's `library`);
`journal` is relative to the directory the station runs in, like every `--journal` of the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pumpctl.dosing.program import Issue, ProgramError, Pump, load_yaml_mapping

__all__ = [
    "SIM_SCHEME",
    "PumpSpec",
    "StationError",
    "StationSpec",
    "load_station",
    "load_station_text",
    "sim_model",
]

SIM_SCHEME = "sim://"
PumpName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]


class StationError(ProgramError):
    """The station file does not parse or validate; `issues` names every field at fault."""


def sim_model(port: str) -> str | None:
    """`sim://ne1000[?faults=...]` -> `ne1000`; None for a real port; ValueError if malformed."""
    if not port.startswith(SIM_SCHEME):
        return None
    from pumpctl.simulator.url import parse_sim_url

    return parse_sim_url(port).model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PumpSpec(_Strict):
    """One pump of the station."""

    model: str = Field(min_length=1)
    #: device path, pyserial URL (`socket://host:port`) or `sim://MODEL` (always emulated)
    port: str = Field(min_length=1)
    #: address on the port (default: the model's factory address)
    address: int | None = Field(default=None, ge=0, le=99)
    #: baud rate (default: the model's)
    baud: int | None = Field(default=None, gt=0)
    #: this pump's own journal: one per pump, so each resumes only its own runs (SR30)
    journal: Path
    #: program started with the station (a file name, relative to the station file)
    program: str | None = None
    #: soft-limit field -> reason, for `program` (SR03: logged and journaled)
    overrides: dict[str, str] = Field(default_factory=dict)
    #: the syringe or tubing on the pump, for plain volumetric dosing (SiLA DoseVolume, ...)
    container: Pump | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        from pumpctl.drivers.registry import available_models

        models = available_models()
        if model not in models:
            raise ValueError(f"unknown pump model {model!r}; valid models: {', '.join(models)}")
        return model

    @field_validator("port")
    @classmethod
    def _port_speaks_the_model(cls, port: str, info: ValidationInfo) -> str:
        emulated = sim_model(port)  # a malformed sim:// URL raises ValueError: a field error
        model = info.data.get("model")
        if emulated is not None and model is not None and emulated != model:
            raise ValueError(f"{port!r} emulates {emulated!r}, but the model is {model!r}")
        return port

    @field_validator("overrides")
    @classmethod
    def _reasons_given(cls, overrides: dict[str, str]) -> dict[str, str]:
        for fld, reason in overrides.items():
            if not reason.strip():
                raise ValueError(f"{fld}: the reason must not be empty (SR03)")
        return overrides


class StationSpec(_Strict):
    """The whole station file."""

    station: str = Field(default="pumpctl station", min_length=1, max_length=80)
    #: where RunProgram finds programs by name (relative to the station file; default: its folder)
    programs: Path | None = None
    pumps: dict[PumpName, PumpSpec] = Field(min_length=1)

    _base_dir: Path = PrivateAttr(default=Path())

    @model_validator(mode="after")
    def _one_pump_per_place(self) -> StationSpec:
        places: dict[tuple[str, int | None], str] = {}
        journals: dict[Path, str] = {}
        models: dict[str, tuple[str, str]] = {}
        for name, pump in self.pumps.items():
            place = (pump.port, pump.address)
            if place in places:
                raise ValueError(
                    f"pumps.{name}: {pump.port} address {pump.address} is pumps.{places[place]}'s"
                )
            places[place] = name
            if pump.journal in journals:
                raise ValueError(
                    f"pumps.{name}.journal: {pump.journal} is pumps.{journals[pump.journal]}'s;"
                    " each pump needs its own journal (resume reads a journal's last run)"
                )
            journals[pump.journal] = name
            other = models.get(pump.port)
            if other is not None and other[0] != pump.model:
                raise ValueError(
                    f"pumps.{name}.model: {pump.model} shares {pump.port} with pumps.{other[1]}"
                    f" ({other[0]}); one line speaks one protocol"
                )
            models[pump.port] = (pump.model, name)
        return self

    @property
    def base_dir(self) -> Path:
        """The station file's folder: `program` and `programs` are relative to it."""
        return self._base_dir

    def programs_dir(self) -> Path:
        if self.programs is None:
            return self._base_dir
        return self.programs if self.programs.is_absolute() else self._base_dir / self.programs

    def program_path(self, name: str) -> Path:
        path = Path(self.pumps[name].program or "")
        return path if path.is_absolute() else self._base_dir / path

    def journal_path(self, name: str, cwd: Path | None = None) -> Path:
        path = self.pumps[name].journal
        return path if path.is_absolute() else (cwd or Path.cwd()) / path


def load_station_text(text: str, base_dir: Path) -> StationSpec:
    """Validate station YAML; `base_dir` is the folder relative program paths start from."""
    try:
        data = load_yaml_mapping(text, "station")
    except ProgramError as exc:
        raise StationError(exc.issues) from exc
    try:
        spec = StationSpec.model_validate(data)
    except ValidationError as exc:
        raise StationError(_issues(exc)) from exc
    spec._base_dir = base_dir
    return spec


def load_station(path: Path) -> StationSpec:
    """Read and validate a station file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StationError.from_os_error(exc, "station", str(path)) from exc
    return load_station_text(text, path.resolve().parent)


def _issues(exc: ValidationError) -> list[Issue]:
    """Field paths as written in the file (`pumps.left.port`), values that are not mappings."""
    issues = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        issues.append(
            Issue(
                field=loc or "station",
                value=None if isinstance(value, dict) else value,
                message=msg,
            )
        )
    return issues
